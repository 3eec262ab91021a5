"""bf16 on the CPU: the fp16 blocks in bf16 agree with fp32 (forward, gradients, R1 and path-length double
backward), the trainer's --amp resolves and trains in bf16, and a run resumes across precisions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch
from training_zip import write_test_zip

from training.train import add_arguments, resolve_options
from training.train import main as train_main
from tryon.errors import InputError
from tryon.nn import Discriminator, Generator, block_dtype, cpu_supports_bf16

# Small networks whose 8x8..32x32 blocks are "fp16" blocks (num_fp16_res=3), the 4x4 ones fp32.
G_KW: dict[str, Any] = dict(
    z_dim=32, c_dim=4, w_dim=32, img_resolution=32, img_channels=3, mapping_kwargs={"num_layers": 2},
    synthesis_kwargs={"channel_base": 1024, "channel_max": 64, "num_fp16_res": 3, "conv_clamp": 256,
                      "fp16_channels_last": True},
)
D_KW: dict[str, Any] = dict(
    c_dim=4, img_resolution=32, img_channels=3, channel_base=1024, channel_max=64, num_fp16_res=3, conv_clamp=256,
    block_kwargs={"fp16_channels_last": True},
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / a.norm())


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def test_block_dtype() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert block_dtype(True, cpu) == torch.float32  # NVlabs: fp16 blocks are fp32 off CUDA.
    assert block_dtype(True, cuda) == torch.float16
    assert block_dtype(True, cpu, half_dtype=torch.bfloat16) == torch.bfloat16
    assert block_dtype(True, cpu, force_fp32=True, half_dtype=torch.bfloat16) == torch.float32
    assert block_dtype(False, cpu, half_dtype=torch.bfloat16) == torch.float32


def _losses_and_grads(G: Generator, D: Discriminator, half_dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """The four phases' kinds of computation on one batch: image, logits, path length (double backward
    through G) and R1 (double backward through D), with the parameter gradients of the last two."""
    torch.manual_seed(1)
    z = torch.randn(8, G.z_dim)
    c = torch.eye(4)[torch.arange(8) % 4]
    G.zero_grad(set_to_none=True)
    D.zero_grad(set_to_none=True)
    ws = G.mapping(z, c)
    img = G.synthesis(ws, half_dtype=half_dtype, noise_mode="const")
    pl_noise = torch.randn_like(img) / img.shape[2]
    (pl_grads,) = torch.autograd.grad((img * pl_noise).sum(), ws, create_graph=True)
    pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
    pl_lengths.mean().backward()
    real = img.detach().requires_grad_(True)
    logits = D(real, c, half_dtype=half_dtype)
    (r1_grads,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    r1 = r1_grads.square().sum([1, 2, 3])
    r1.mean().backward()
    return {
        "img": img.detach(), "logits": logits.detach(), "pl_lengths": pl_lengths.detach(), "r1": r1.detach(),
        "G_grads": torch.cat([p.grad.flatten() for p in G.parameters() if p.grad is not None]),
        "D_grads": torch.cat([p.grad.flatten() for p in D.parameters() if p.grad is not None]),
    }


def test_bf16_blocks_match_fp32_forward_and_double_backward() -> None:
    torch.manual_seed(0)
    G = Generator(**G_KW).train()
    D = Discriminator(**D_KW).train()
    seen: dict[str, torch.dtype] = {}

    def note(name: str) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
            seen.setdefault(name, output.dtype)

        return hook

    hooks = [
        G.synthesis.b32.conv1.register_forward_hook(note("G32")),
        G.synthesis.b4.conv1.register_forward_hook(note("G4")),
        D.b32.conv0.register_forward_hook(note("D32")),
    ]
    fp32 = _losses_and_grads(G, D, None)
    assert seen == {"G32": torch.float32, "G4": torch.float32, "D32": torch.float32}
    seen.clear()
    bf16 = _losses_and_grads(G, D, torch.bfloat16)
    for h in hooks:
        h.remove()
    # The high-resolution blocks ran in bf16, the 4x4 block in fp32; what comes out is fp32.
    assert seen == {"G32": torch.bfloat16, "G4": torch.float32, "D32": torch.bfloat16}
    for name, ref in fp32.items():
        got = bf16[name]
        assert got.dtype == torch.float32 and torch.isfinite(got).all(), name
        assert _rel(ref, got) > 0, f"{name}: bf16 gave exactly the fp32 result (did it run in bf16?)"
    # bf16 keeps 8 bits of mantissa: ~0.4% per rounding; measured here 0.5-2% on values, 3-4% on gradients.
    for name in ("img", "logits", "pl_lengths", "r1"):
        assert _rel(fp32[name], bf16[name]) < 0.05, name
    for name in ("G_grads", "D_grads"):
        assert _rel(fp32[name], bf16[name]) < 0.1, name
        assert _cos(fp32[name], bf16[name]) > 0.995, name


def test_bf16_inference_matches_fp32() -> None:
    torch.manual_seed(0)
    G = Generator(**G_KW).eval()
    z = torch.randn(4, G.z_dim)
    c = torch.eye(4)
    with torch.no_grad():
        ref = G(z, c, noise_mode="const")
        for batch in (1, 4):  # Batch 1 takes the fused modulated conv, larger batches the unfused one.
            got = G(z[:batch], c[:batch], noise_mode="const", half_dtype=torch.bfloat16)
            assert got.dtype == torch.float32
            assert 0 < _rel(ref[:batch], got) < 0.03


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


INFO = {"size": 8, "resolution": 64, "channels": 3, "label_dim": 0}


def test_amp_auto_is_bf16_only_on_cpus_with_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    import tryon.nn.misc

    args = _parse(["--data", "x.zip", "--outdir", "o"])
    for has_bf16, expected in ((True, "bf16"), (False, "off")):
        monkeypatch.setattr(tryon.nn.misc, "cpu_supports_bf16", lambda v=has_bf16: v)
        assert resolve_options(args, device="cpu", dataset_info=INFO).amp == expected
    assert resolve_options(_parse(["--data", "x.zip", "--outdir", "o", "--amp", "bf16"]), device="cpu",
                           dataset_info=INFO).amp == "bf16"
    with pytest.raises(InputError, match="--amp fp16 needs a CUDA device"):
        resolve_options(_parse(["--data", "x.zip", "--outdir", "o", "--amp", "fp16"]), device="cpu",
                        dataset_info=INFO)


def test_cpu_bf16_detection_reads_the_cpu_flags() -> None:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    expected = any(f in flags.split() for f in ("avx512_bf16", "amx_bf16", "bf16"))
    assert cpu_supports_bf16() == expected


# A trainer config with real fp16 blocks (16x16..64x64 at num_fp16_res 3), small enough for seconds a step.
TINY = [
    "--cfg", "tiny64", "--batch", "4", "--channel-base", "512", "--channel-max", "32", "--z-dim", "16",
    "--w-dim", "16", "--map", "1", "--fp16-res", "3", "--workers", "0", "--no-progress", "--grid-rows", "1",
    "--grid-cols", "2", "--aug", "ada", "--p", "0.2", "--g-reg-interval", "2", "--d-reg-interval", "3",
    "--channels-last", "--ops", "auto",
]
STEP_KIMG = 0.004


def _last_snapshot(run_dir: Path) -> Path:
    return sorted(p for p in run_dir.iterdir() if p.name.startswith("network-snapshot-"))[-1]


def _log(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_fp32_run_resumes_in_bf16_and_back(tmp_path: Path) -> None:
    """A run started in fp32 continues in bf16 (all four phases, R1 and path length included) and the
    snapshots it writes are the same fp32 tensors under the same names; then back to fp32."""
    data = write_test_zip(tmp_path / "tiny64.zip", num_images=12, resolution=64)
    outdir = tmp_path / "runs"

    def train(kimg: float, amp: str, resume: Path | None) -> Path:
        before = set(outdir.iterdir()) if outdir.exists() else set()
        argv = ["--data", str(data), "--outdir", str(outdir), "--kimg", str(kimg), "--amp", amp, *TINY]
        argv += ["--resume", str(resume)] if resume is not None else []
        assert train_main(argv) == 0
        (run_dir,) = set(outdir.iterdir()) - before
        return run_dir

    first = train(3 * STEP_KIMG, "off", None)
    second = train(6 * STEP_KIMG, "bf16", first)
    third = train(7 * STEP_KIMG, "off", second)
    assert json.loads((second / "training_options.json").read_text())["amp"] == "bf16"
    entries = _log(second)
    assert entries[0]["step"] == 6 and entries[-1]["kimg"] == pytest.approx(6 * STEP_KIMG)
    for key in ("Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/pl_penalty"):
        assert np.isfinite(entries[-1][key]), key
    assert _log(third)[-1]["step"] == 7

    a, b = _last_snapshot(first), _last_snapshot(second)
    for file in ("G.safetensors", "D.safetensors", "G_ema.safetensors", "resume.safetensors"):
        ta = safetensors.torch.load_file(a / file)
        tb = safetensors.torch.load_file(b / file)
        assert ta.keys() == tb.keys(), file
        for key, x in ta.items():
            assert tb[key].dtype == x.dtype and tb[key].shape == x.shape, (file, key)
            assert torch.isfinite(tb[key].float()).all(), (file, key)
    assert set(json.loads((a / "resume.json").read_text())) == set(json.loads((b / "resume.json").read_text()))


def test_rendering_precision_resolves_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import tryon.nn.misc
    from tryon.nn import resolve_precision

    for has_bf16, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(tryon.nn.misc, "cpu_supports_bf16", lambda v=has_bf16: v)
        assert resolve_precision("auto", "cpu") == expected
        assert resolve_precision("fp32", "cpu") == "fp32"
        assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "fp32"  # NVlabs' fp16 blocks are CUDA's fast path.
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        resolve_precision("fp16", "cpu")


def test_fashion_pipeline_renders_in_bf16_close_to_fp32() -> None:
    from tryon.fashion import FashionPipeline

    fp32 = FashionPipeline.from_checkpoint(None, precision="fp32")
    bf16 = FashionPipeline.from_checkpoint(None, precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    g = torch.Generator().manual_seed(0)
    z = torch.randn([8, int(fp32.G.z_dim)], generator=g)
    c = torch.zeros([8, int(fp32.G.c_dim)])
    with torch.no_grad():
        ws = fp32.G.mapping(z, c if fp32.G.c_dim else None)
    a = np.stack(fp32.render(ws)).astype(np.float64)
    b = np.stack(bf16.render(ws)).astype(np.float64)
    psnr = 10 * np.log10(255**2 / max(float(np.mean((a - b) ** 2)), 1e-12))
    assert not np.array_equal(a, b)  # The bf16 blocks really ran ...
    assert psnr > 40, psnr  # ... and moved pixels by well under one grey level on average (51 dB measured).


def test_bf16_rendering_uses_the_compiled_ops_which_compute_bf16_natively() -> None:
    # The compiled CPU kernels read and write bf16 as it is (float32 math inside), so bf16 rendering keeps
    # them: at batch 8 they render 1.12x as fast as the `ref` ops (bench_precision.py).
    import tryon.ops
    from tryon.fashion import FashionPipeline

    pipe = FashionPipeline.from_checkpoint(None, precision="fp32")
    ws = torch.zeros([1, pipe.num_ws, int(pipe.G.w_dim)])
    pipe.render(ws)
    if tryon.ops.backends()["bias_act/cpu"] != "cpp":
        pytest.skip("the compiled CPU ops could not be built here")
    pipe.precision = "bf16"
    pipe.render(ws)
    seen = tryon.ops.backends()
    assert (seen["bias_act/cpu"], seen["upfirdn2d/cpu"]) == ("cpp", "cpp")
