"""2D convolution with optional up/downsampling, built on `upfirdn2d`.

Chooses the cheapest equivalent formulation: downsample before a 1x1 conv, upsample after it,
strided conv for downsampling, transposed strided conv for upsampling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tryon.ops.upfirdn2d import Padding, _parse_padding, get_filter_size, upfirdn2d


def _conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: int | list[int] = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    kh, kw = w.shape[2], w.shape[3]
    if not flip_weight and (kw > 1 or kh > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    """Conv2d with integer up/downsampling through the FIR filter `f`.

    Args:
        x:           [N, C_in, H, W] input.
        w:           [C_out, C_in // groups, kh, kw] weight.
        f:           Low-pass filter (see `setup_filter`), or None for none.
        up, down:    Integer resampling factors.
        padding:     Padding with respect to the upsampled image.
        groups:      Grouped convolution.
        flip_weight: False = convolution, True = correlation (what `torch.nn.functional.conv2d` does).
        flip_filter: False = convolution, True = correlation.
        impl:        Implementation of the `upfirdn2d` steps ("auto", "cuda", "cpp", "ref").

    Returns:
        [N, C_out, H * up / down, W * up / down] (for "same" padding).
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x and w must be 4D, got {list(x.shape)} and {list(w.shape)}")
    if x.dtype != w.dtype:
        raise ValueError(f"x and w must share a dtype, got {x.dtype} and {w.dtype}")
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got {up} and {down}")
    out_channels, in_channels_per_group, kh, kw = (int(s) for s in w.shape)
    fw, fh = get_filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Account for the filter taps in the padding.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    def fir(t: torch.Tensor, **kw_: object) -> torch.Tensor:
        return upfirdn2d(t, f, flip_filter=flip_filter, impl=impl, **kw_)  # type: ignore[arg-type]

    # 1x1 conv, downsampling only: downsample first (fewer pixels to convolve).
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = fir(x, down=down, padding=[px0, px1, py0, py1])
        return _conv2d(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 conv, upsampling only: convolve first, then upsample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv2d(x, w, groups=groups, flip_weight=flip_weight)
        return fir(x, up=up, padding=[px0, px1, py0, py1], gain=up**2)

    # Downsampling only: filter, then strided conv.
    if down > 1 and up == 1:
        x = fir(x, padding=[px0, px1, py0, py1])
        return _conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling (and maybe downsampling): transposed strided conv, then filter.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_channels_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_channels_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv2d(
            x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight
        )
        x = fir(x, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2)
        if down > 1:
            x = fir(x, down=down)
        return x

    # No resampling, symmetric padding: a plain conv.
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # Anything else: pad through upfirdn2d, then conv.
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up**2,
                  flip_filter=flip_filter, impl=impl)
    x = _conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = fir(x, down=down)
    return x
