"""Fused bias + activation + gain + clamp.

    y = clamp(act(x + b) * gain, -clamp, clamp)

with `b` broadcast along dimension `dim` of `x`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tryon.ops import _dispatch


@dataclass(frozen=True)
class ActivationSpec:
    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float  # Default slope / shape parameter.
    def_gain: float  # Default output gain (keeps the signal variance for Gaussian inputs).
    cuda_idx: int  # Index of the activation in the compiled kernels.
    ref: str  # What the kernel's backward may reuse: "x" (input), "y" (output) or "" (nothing).
    has_2nd_grad: bool  # Whether the second derivative is non-zero.


def _linear(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return x


def _relu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.relu(x)


def _lrelu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.leaky_relu(x, alpha)


def _tanh(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.tanh(x)


def _sigmoid(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.sigmoid(x)


def _elu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.elu(x)


def _selu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.selu(x)


def _softplus(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.softplus(x)


def _swish(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.sigmoid(x) * x


activation_funcs: dict[str, ActivationSpec] = {
    "linear": ActivationSpec(_linear, 0.0, 1.0, 1, "", False),
    "relu": ActivationSpec(_relu, 0.0, math.sqrt(2), 2, "y", False),
    "lrelu": ActivationSpec(_lrelu, 0.2, math.sqrt(2), 3, "y", False),
    "tanh": ActivationSpec(_tanh, 0.0, 1.0, 4, "y", True),
    "sigmoid": ActivationSpec(_sigmoid, 0.0, 1.0, 5, "y", True),
    "elu": ActivationSpec(_elu, 0.0, 1.0, 6, "y", True),
    "selu": ActivationSpec(_selu, 0.0, 1.0, 7, "y", True),
    "softplus": ActivationSpec(_softplus, 0.0, 1.0, 8, "y", True),
    "swish": ActivationSpec(_swish, 0.0, math.sqrt(2), 9, "x", True),
}


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
