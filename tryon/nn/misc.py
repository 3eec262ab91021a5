"""Small helpers shared by the networks."""

from __future__ import annotations

from collections.abc import Sequence

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
