"""Custom ops with a plain-PyTorch reference and compiled (C++ / CUDA) kernels.

Each op is one public function with `impl="auto"|"cuda"|"cpp"|"ref"`:

- ``ref``: plain PyTorch, always available, the ground truth of the parity tests.
- ``cuda``: our CUDA kernels (CUDA tensors), built lazily with ninja on first use.
- ``cpp``: our C++ CPU kernels (CPU tensors), built the same way.
- ``auto``: the compiled kernel for the tensor's device when it builds (and where it is faster),
  otherwise ``ref`` with one clear warning.

Nothing is compiled at import time.
"""

from tryon.ops._dispatch import backends, use_impl
from tryon.ops.activations import activation_funcs
from tryon.ops.bias_act import bias_act
from tryon.ops.conv2d_resample import conv2d_resample
from tryon.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = [
    "activation_funcs",
    "backends",
    "bias_act",
    "conv2d_resample",
    "downsample2d",
    "filter2d",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
    "use_impl",
]
