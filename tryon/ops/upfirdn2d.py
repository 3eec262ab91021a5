"""Upsample, FIR filter, downsample (upfirdn2d) and the resampling helpers built on it.

For each channel of `x` [N, C, H, W]:
  1. upsample by inserting `up - 1` zeros after each pixel,
  2. pad (negative padding crops),
  3. convolve with the 2D FIR filter `f` (times `gain`),
  4. downsample by keeping every `down`-th pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tryon.ops import _dispatch

IntPair = int | Sequence[int]
Padding = int | Sequence[int]


def _parse_scaling(scaling: IntPair) -> tuple[int, int]:
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    sx, sy = (int(s) for s in scaling)
    if sx < 1 or sy < 1:
        raise ValueError(f"up/down factors must be >= 1, got {list(scaling)}")
    return sx, sy


def _parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        padding = [padding, padding]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        padx, pady = padding
        return padx, padx, pady, pady
    if len(padding) != 4:
        raise ValueError(f"padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding}")
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def get_filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a 1D (separable) or 2D filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1D or 2D, got shape {list(f.shape)}")
    fw = f.shape[-1]
    fh = f.shape[0]
    return int(fw), int(fh)


def setup_filter(
    f: Sequence[float] | np.ndarray | torch.Tensor | None,
    device: torch.device | str = "cpu",
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """A float32 filter tensor from a list of taps.

    A 1D list becomes its outer product (2D) unless `separable`; the result is normalised to sum
    `gain` (or `gain ** (ndim / 2)` per axis for separable filters). [1, 3, 3, 1] -> the [4, 4] kernel
    StyleGAN2 uses for all resampling.
    """
    if f is None:
        f = [1]
    t = torch.as_tensor(f, dtype=torch.float32)
    if t.ndim == 0:
        t = t[None]
    if t.ndim not in (1, 2) or t.numel() == 0:
        raise ValueError(f"filter must be a non-empty 1D or 2D array, got shape {list(t.shape)}")
    if separable is None:
        separable = t.ndim == 1 and t.numel() >= 8
    if t.ndim == 1 and not separable:
        t = t.ger(t)
    if normalize:
        t = t / t.sum()
    if flip_filter:
        t = t.flip(list(range(t.ndim)))
    t = t * (gain ** (t.ndim / 2))
    return t.to(device=device)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: IntPair = 1,
    down: IntPair = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Pad, upsample, filter and downsample a batch of 2D images.

    Args:
        x:           [N, C, H, W] input.
        f:           Float32 FIR filter, [fh, fw] (2D) or [fw] (separable), or None for identity.
        up:          Integer upsampling factor, or [x, y].
        down:        Integer downsampling factor, or [x, y].
        padding:     Padding in pixels of the upsampled image: int, [x, y] or [x0, x1, y0, y1].
                     Negative values crop.
        flip_filter: False = convolution, True = correlation.
        gain:        Overall scaling of the filter's response.
        impl:        "auto", "cuda", "cpp" or "ref" (see `tryon.ops`).

    Returns:
        [N, C, (H * up + py0 + py1 - fh + 1) // down ceil, ...] tensor of the same dtype.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W], got shape {list(x.shape)}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if f.dtype != torch.float32 or f.ndim not in (1, 2):
        raise ValueError(f"f must be a 1D or 2D float32 tensor, got {f.dtype} {list(f.shape)}")
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = get_filter_size(f)
    out_w = (x.shape[3] * upx + px0 + px1 - fw) // downx + 1
    out_h = (x.shape[2] * upy + py0 + py1 - fh) // downy + 1
    if out_w < 1 or out_h < 1:
        raise ValueError(f"upfirdn2d output would be empty for input {list(x.shape)} and these settings")
    fused = _dispatch.compiled_op("upfirdn2d", x, impl)
    if fused is not None:
        return fused(
            x, f, up=(upx, upy), down=(downx, downy), padding=(px0, px1, py0, py1),
            flip_filter=flip_filter, gain=gain,
        )
    return upfirdn2d_ref(
        x, f, up=(upx, upy), down=(downx, downy), padding=(px0, px1, py0, py1), flip_filter=flip_filter, gain=gain
    )


def upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor,
    up: IntPair = 1,
    down: IntPair = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Plain-PyTorch `upfirdn2d`: the reference every compiled kernel is tested against."""
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    N, C, H, W = x.shape

    # Upsample by inserting zeros.
    x = x.reshape([N, C, H, 1, W, 1])
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape([N, C, H * upy, W * upx])

    # Pad or crop.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    # Convolve with the filter (conv2d correlates, so flip it for a true convolution).
    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([C, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=C)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=C)
        x = F.conv2d(x, f.unsqueeze(3), groups=C)

    # Downsample by throwing away pixels.
    return x[:, :, ::downy, ::downx]


def filter2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Filter `x` with `f`, keeping its size (plus `padding`)."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: IntPair = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Upsample `x` by `up` with the FIR filter `f`: [N, C, H, W] -> [N, C, H * up, W * up]."""
    upx, upy = _parse_scaling(up)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [
        px0 + (fw + upx - 1) // 2,
        px1 + (fw - upx) // 2,
        py0 + (fh + upy - 1) // 2,
        py1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down: IntPair = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Downsample `x` by `down` with the FIR filter `f`: [N, C, H, W] -> [N, C, H / down, W / down]."""
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [
        px0 + (fw - downx + 1) // 2,
        px1 + (fw - downx) // 2,
        py0 + (fh - downy + 1) // 2,
        py1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
