"""Behaviour of the networks beyond the fixture: architectures, resolutions, W+, noise, mixing."""

from __future__ import annotations

import pytest
import torch

from tryon.nn import Discriminator, Generator

TINY = dict(channel_base=256, channel_max=32)


def tiny_G(res: int = 32, c_dim: int = 5, arch: str = "skip", **kw: object) -> Generator:
    torch.manual_seed(0)
    return Generator(
        z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=res, img_channels=3,
        mapping_kwargs={"num_layers": 2}, synthesis_kwargs={**TINY, "architecture": arch, **kw},
    ).eval()


def tiny_D(res: int = 32, c_dim: int = 5, arch: str = "resnet") -> Discriminator:
    torch.manual_seed(0)
    return Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, architecture=arch, **TINY).eval()


def inputs(n: int, c_dim: int = 5) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(1)
    z = torch.randn([n, 16], generator=g)
    c = torch.nn.functional.one_hot(torch.arange(n) % max(c_dim, 1), max(c_dim, 1)).float() if c_dim else None
    return z, c


@pytest.mark.parametrize("arch", ["orig", "skip", "resnet"])
def test_generator_architectures_give_images(arch: str) -> None:
    G = tiny_G(arch=arch)
    z, c = inputs(2)
    img = G(z, c, noise_mode="const")
    assert img.shape == (2, 3, 32, 32)
    assert torch.isfinite(img).all()


@pytest.mark.parametrize("arch", ["orig", "skip", "resnet"])
def test_discriminator_architectures_give_logits(arch: str) -> None:
    D = tiny_D(arch=arch)
    _, c = inputs(4)
    logits = D(torch.randn([4, 3, 32, 32]), c)
    assert logits.shape == (4, 1)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("res", [4, 8, 1024])
def test_resolutions(res: int) -> None:
    G = Generator(
        z_dim=8, c_dim=0, w_dim=8, img_resolution=res, img_channels=3,
        mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 16384, "channel_max": 4},
    ).eval()
    assert G.num_ws == 2 * G.synthesis.img_resolution_log2 - 2
    D = Discriminator(c_dim=0, img_resolution=res, img_channels=3, channel_base=16384, channel_max=4)
    with torch.no_grad():
        img = G(torch.randn([2, 8]), None, noise_mode="none")
        assert img.shape == (2, 3, res, res)
        assert D(img, None).shape == (2, 1)


def test_rejects_bad_resolution_and_architecture() -> None:
    with pytest.raises(ValueError, match="power of 2"):
        Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=48, img_channels=3)
    with pytest.raises(ValueError, match="architecture"):
        tiny_G(arch="unet")


def test_unconditional_and_conditional_label_checks() -> None:
    G = tiny_G(c_dim=0)
    z, _ = inputs(2, c_dim=0)
    assert G(z, None).shape == (2, 3, 32, 32)
    Gc = tiny_G(c_dim=5)
    with pytest.raises(ValueError, match="conditional"):
        Gc(z, None)
    with pytest.raises(ValueError, match="dimension 1"):
        Gc(z, torch.zeros([2, 4]))


def test_label_changes_the_image() -> None:
    G = tiny_G()
    z = inputs(1)[0].repeat(2, 1)
    c = torch.eye(5)[[0, 3]]
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
    assert (img[0] - img[1]).abs().max() > 1e-3


def test_w_plus_and_style_mixing() -> None:
    G = tiny_G()
    z, c = inputs(2)
    with torch.no_grad():
        ws = G.mapping(z, c)
        assert ws.shape == (2, G.num_ws, 16)
        # Every ws copy is the same w until we mix.
        assert torch.equal(ws[:, 0], ws[:, -1])
        mixed = ws[0:1].clone()
        mixed[:, 6:] = ws[1:2, 6:]  # Fine layers (colour/texture) from the second sample.
        img_a, img_b = G.synthesis(ws, noise_mode="const")
        img_mix = G.synthesis(mixed, noise_mode="const")[0]
    # Mixing the fine layers changes the image but keeps it closer to A than to B.
    assert (img_mix - img_a).abs().mean() > 1e-4
    assert (img_mix - img_a).abs().mean() < (img_mix - img_b).abs().mean()


def test_truncation_pulls_towards_w_avg() -> None:
    G = tiny_G()
    G.mapping.w_avg.normal_()
    z, c = inputs(3)
    with torch.no_grad():
        w1 = G.mapping(z, c)
        w0 = G.mapping(z, c, truncation_psi=0.0)
        wh = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(w0, G.mapping.w_avg.expand_as(w0))
    assert torch.allclose(wh[:, :2], 0.5 * (w1[:, :2] + G.mapping.w_avg), atol=1e-6)
    assert torch.equal(wh[:, 2:], w1[:, 2:])


def test_w_avg_tracks_in_training_mode_only() -> None:
    G = tiny_G()
    z, c = inputs(4)
    before = G.mapping.w_avg.clone()
    G.mapping(z, c)
    assert torch.equal(G.mapping.w_avg, before)
    G.train()
    G.mapping(z, c)
    assert not torch.equal(G.mapping.w_avg, before)


def test_noise_control() -> None:
    G = tiny_G()
    z, c = inputs(1)
    with torch.no_grad():
        for layer in G.synthesis.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(0.5)
        ws = G.mapping(z, c)
        a = G.synthesis(ws, noise_mode="const")
        b = G.synthesis(ws, noise_mode="const")
        assert torch.equal(a, b)
        torch.manual_seed(1)
        r1 = G.synthesis(ws, noise_mode="random")
        torch.manual_seed(2)
        r2 = G.synthesis(ws, noise_mode="random")
        assert not torch.equal(r1, r2)
        shapes = G.synthesis.noise_shapes()
        zeros = [torch.zeros([1, 1, *s]) for s in shapes]
        assert torch.allclose(G.synthesis(ws, noise=zeros), G.synthesis(ws, noise_mode="none"), atol=1e-6)
        const = []
        for res in G.synthesis.block_resolutions:
            block = getattr(G.synthesis, f"b{res}")
            layers = [getattr(block, name) for name in ("conv0", "conv1") if hasattr(block, name)]
            const += [layer.noise_const[None, None] for layer in layers]
        assert torch.allclose(G.synthesis(ws, noise=const), a, atol=1e-6)
        with pytest.raises(ValueError, match="noise tensors"):
            G.synthesis(ws, noise=zeros[:-1])
        with pytest.raises(ValueError, match="noise_mode"):
            G.synthesis(ws, noise_mode="loud")


def test_fused_and_unfused_modconv_agree() -> None:
    G = tiny_G(arch="resnet")
    z, c = inputs(3)
    with torch.no_grad():
        ws = G.mapping(z, c)
        a = G.synthesis(ws, noise_mode="const", fused_modconv=True)
        b = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    assert torch.allclose(a, b, atol=1e-4)


def test_batch_consistency() -> None:
    G = tiny_G()
    z, c = inputs(4)
    with torch.no_grad():
        full = G(z, c, noise_mode="const")
        single = torch.cat([G(z[i : i + 1], c[i : i + 1], noise_mode="const") for i in range(4)])
    assert torch.allclose(full, single, atol=1e-5)


def test_minibatch_std_needs_divisible_batch() -> None:
    D = tiny_D()
    _, c = inputs(6)
    with pytest.raises(ValueError, match="divisible"):
        D(torch.randn([6, 3, 32, 32]), c)


def test_discriminator_features_are_multiscale() -> None:
    D = tiny_D()
    feats = D.features(torch.randn([2, 3, 32, 32]))
    assert [f.shape[-1] for f in feats] == [16, 8, 4]


def test_repr_reads_well() -> None:
    text = repr(tiny_G())
    assert "SynthesisLayer(" in text and "in_channels=32, out_channels=32, w_dim=16, resolution=8" in text
