"""The activation functions of `bias_act`: each one's reference implementation, its default slope
and gain, and its index in the compiled kernels.

A leaf of tryon.ops: `bias_act` and the compiled kernels' wrappers (`_fused`) both read this table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


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
