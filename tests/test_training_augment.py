"""ADA: the augmentation pipe (identity at p=0, shapes, differentiability, transforms) and the p controller."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.augment import AUGPIPES, AdaController, AugmentPipe, _imgfilter_bank


def _smooth_images(n: int, channels: int = 3, res: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand([n, channels, 6, 6], generator=g) * 2 - 1
    return F.interpolate(x, size=res, mode="bicubic", align_corners=False).clamp(-1, 1)


@pytest.mark.parametrize("name", sorted(AUGPIPES))
def test_identity_at_p0_and_shape_at_p1(name: str) -> None:
    x = _smooth_images(4)
    pipe = AugmentPipe.from_name(name)
    pipe.p = 0.0
    assert torch.equal(pipe(x), x)
    pipe.p = 1.0
    torch.manual_seed(0)
    y = pipe(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    assert not torch.equal(y, x)


def test_grayscale_images_keep_their_shape() -> None:
    x = _smooth_images(4, channels=1)
    pipe = AugmentPipe.from_name("bgcfnc")
    pipe.p = 1.0
    assert pipe(x).shape == x.shape


def test_differentiable_twice_like_r1() -> None:
    """R1 takes d D(aug(x)) / dx with create_graph, then backpropagates through that gradient."""
    x = _smooth_images(4).requires_grad_(True)
    pipe = AugmentPipe.from_name("bgcfnc")
    pipe.p = 0.8
    weight = torch.nn.Parameter(torch.randn(1, 3, 3, 3))
    torch.manual_seed(1)
    logits = F.conv2d(pipe(x), weight).mean(dim=[1, 2, 3])
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0


def test_xflip_flips_about_half_of_the_samples() -> None:
    x = _smooth_images(64)
    pipe = AugmentPipe(xflip=1)
    pipe.p = 1.0
    torch.manual_seed(0)
    y = pipe(x)
    same = (y - x).abs().amax(dim=[1, 2, 3])
    flipped = (y - x.flip(3)).abs().amax(dim=[1, 2, 3])
    # Every sample is the image or its mirror, up to the resampling filters.
    assert torch.all(torch.minimum(same, flipped) < 0.1)
    assert 16 <= int((flipped < same).sum()) <= 48


def test_rotate90_gives_quarter_turns() -> None:
    x = _smooth_images(32)
    pipe = AugmentPipe(rotate90=1)
    pipe.p = 1.0
    torch.manual_seed(0)
    y = pipe(x)
    dists = torch.stack([(y - torch.rot90(x, k, dims=(2, 3))).abs().amax(dim=[1, 2, 3]) for k in range(4)])
    assert torch.all(dists.min(dim=0).values < 0.1)
    assert len(set(dists.argmin(dim=0).tolist())) == 4


def test_integer_translation_moves_by_whole_pixels() -> None:
    x = _smooth_images(8, res=32)
    pipe = AugmentPipe(xint=1, xint_max=0.125)
    pipe.p = 1.0
    torch.manual_seed(0)
    y = pipe(x)
    # Away from the (reflect-padded) border every sample equals a shifted copy of its input.
    for i in range(8):
        best = min(
            (y[i, :, 8:24, 8:24] - x[i, :, 8 - dy : 24 - dy, 8 - dx : 24 - dx]).abs().max().item()
            for dy in range(-4, 5)
            for dx in range(-4, 5)
        )
        assert best < 0.05


def test_color_transforms_keep_the_image_geometry() -> None:
    x = _smooth_images(8)
    pipe = AugmentPipe.from_name("color")
    pipe.p = 1.0
    torch.manual_seed(0)
    y = pipe(x)
    # Each output pixel is an affine function of the same input pixel: fit per sample, check the residual.
    for i in range(8):
        a = torch.cat([x[i].reshape(3, -1).t(), torch.ones(x.shape[2] * x.shape[3], 1)], dim=1)
        coef = torch.linalg.lstsq(a, y[i].reshape(3, -1).t()).solution
        assert (a @ coef - y[i].reshape(3, -1).t()).abs().max() < 1e-4


def test_probability_scales_with_p() -> None:
    x = _smooth_images(400, res=8)
    pipe = AugmentPipe(brightness=1)
    counts = []
    for p in (0.1, 0.5):
        pipe.p = p
        torch.manual_seed(0)
        changed = ((pipe(x) - x).abs().amax(dim=[1, 2, 3]) > 1e-6).float().mean().item()
        counts.append(changed)
    assert abs(counts[0] - 0.1) < 0.06 and abs(counts[1] - 0.5) < 0.1


def test_imgfilter_bands_sum_to_identity() -> None:
    bank = _imgfilter_bank()
    total = bank.sum(axis=0)
    centre = total.size // 2
    expected = np.zeros_like(total)
    expected[centre] = 1
    assert np.abs(total - expected).max() < 1e-9


def test_ada_p_rises_when_d_overfits_and_falls_otherwise() -> None:
    ada = AdaController(target=0.6, interval=4, speed_kimg=10, batch_size=16)
    step = 16 * 4 / (10 * 1000)
    p = 0.0
    for _ in range(5):  # D is sure about every real: r_t = 1 > 0.6.
        ada.accumulate(sign_sum=64.0, count=64.0)
        p = ada.adjust(p)
    assert p == pytest.approx(5 * step)
    assert ada.last_rt == pytest.approx(1.0)
    for _ in range(2):  # r_t = 0.2 < 0.6.
        ada.accumulate(sign_sum=0.2 * 64, count=64.0)
        p = ada.adjust(p)
    assert p == pytest.approx(3 * step)
    for _ in range(10):
        ada.accumulate(sign_sum=-64.0, count=64.0)
        p = ada.adjust(p)
    assert p == 0.0  # Clamped at 0.
    assert ada.adjust(0.3) == 0.3  # Nothing accumulated: unchanged.
