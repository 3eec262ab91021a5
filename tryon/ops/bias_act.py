"""Fused bias + activation + gain + clamp.

    y = clamp(act(x + b) * gain, -clamp, clamp)

with `b` broadcast along dimension `dim` of `x`.
"""

from __future__ import annotations

import torch

from tryon.ops import _dispatch
from tryon.ops.activations import activation_funcs


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Add bias `b` to `x` along `dim`, apply `act`, multiply by `gain`, clamp to [-clamp, clamp].

    Args:
        x:     Input tensor of any shape and float dtype.
        b:     Bias of shape [x.shape[dim]], or None for no bias.
        dim:   The dimension of `x` that `b` runs along.
        act:   Activation name, one of `activation_funcs`.
        alpha: Shape parameter of the activation (lrelu slope), None for its default.
        gain:  Output scale, None for the activation's default gain.
        clamp: Clamp the output to [-clamp, clamp]; None for no clamping.
        impl:  "auto", "cuda", "cpp" or "ref" (see `tryon.ops`).

    Returns:
        A tensor of the same shape and dtype as `x`.
    """
    if act not in activation_funcs:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(activation_funcs)}")
    if b is not None and (b.ndim != 1 or not (0 <= dim < x.ndim) or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias of shape {list(b.shape)} does not fit dim {dim} of x {list(x.shape)}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"clamp must be >= 0 or None, got {clamp}")
    fused = _dispatch.compiled_op("bias_act", x, impl)
    if fused is not None:
        return fused(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    return bias_act_ref(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)


def bias_act_ref(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Plain-PyTorch `bias_act`: the reference every compiled kernel is tested against."""
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    if b is not None:
        x = x + b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
