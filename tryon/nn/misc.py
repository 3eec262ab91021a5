"""Small helpers shared by the networks."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch


def assert_shape(tensor: torch.Tensor, ref_shape: Sequence[int | None]) -> None:
    """Raise ValueError unless `tensor` has the shape `ref_shape` (None matches any size)."""
    if tensor.ndim != len(ref_shape):
        raise ValueError(f"wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}")
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape, strict=True)):
        if ref_size is not None and int(size) != int(ref_size):
            raise ValueError(f"wrong size for dimension {idx}: got {int(size)}, expected {int(ref_size)}")


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each sample to unit mean square along `dim`."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


@functools.cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (x86 avx512_bf16 or AMX, ARM bf16), where bf16 convolutions
    run about twice as fast as fp32 ones. Elsewhere oneDNN emulates bf16, slower than fp32."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags = set(line.split(":", 1)[-1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """A rendering precision ("auto", "fp32", "bf16") -> the one used on `device`: "fp32" or "bf16".

    "bf16" runs a generator's fp16 blocks (its `num_fp16_res` highest resolutions) in bfloat16, the
    mapping, styles, demodulation and ToRGB sum staying fp32 (`tryon.nn.networks.block_dtype`); "fp32"
    is NVlabs' precision (fp32 on a CPU, fp16 blocks on CUDA). "auto" is "bf16" on a CPU with bf16
    instructions and "fp32" elsewhere (on CUDA NVlabs' fp16 is already the fast path).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and cpu_supports_bf16() else "fp32"
