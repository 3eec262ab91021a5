"""The compiled kernels of `tryon.ops`: lazy build, cache, and autograd wrappers.

`load_plugin(kind)` builds the extension for one kind of kernel on first use (never at import):

- ``"cpp"``:  the C++ CPU kernels (csrc/*.cpp), parallel with OpenMP, `-O3`.
- ``"cuda"``: the CUDA kernels (csrc/*.cu) and the bindings; needs a GPU, a CUDA build of torch and
  the CUDA toolkit (CUDA_HOME / nvcc).

Builds are cached in ``$TRYON_CACHE_DIR/ops/<module>`` (default ``~/.cache/tryon/ops``), where the
module name carries a hash of the sources, the torch / Python / CUDA versions, the kind and the
compiler flags. A build runs in a private temporary folder that is renamed into place when complete,
under a per-build file lock, so processes building at once (several ranks, several workers) neither
collide nor build twice, and a build killed half-way leaves nothing behind that looks complete.

`bias_act` and `upfirdn2d` here have the semantics of `bias_act_ref` / `upfirdn2d_ref` and are
differentiable twice (`bias_act`) or any number of times (`upfirdn2d`, whose gradient is another
`upfirdn2d`). They run the kernels of the tensor's device: CUDA tensors use the "cuda" build, CPU
tensors the "cpp" build. Call them through the public ops (`impl="cpp"` / `"cuda"` / `"auto"`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from tryon.ops.activations import activation_funcs

logger = logging.getLogger("tryon.ops")

# Where the sources are; tests point this at a broken copy to exercise build failures.
SOURCE_DIR = Path(__file__).resolve().parent / "csrc"

KINDS = ("cpp", "cuda")
_HEADERS = ("common.h", "bias_act.h", "upfirdn2d.h")
_SOURCES = {
    "cpp": ("bindings.cpp", "bias_act.cpp", "upfirdn2d.cpp"),
    "cuda": ("bindings.cpp", "bias_act.cu", "upfirdn2d.cu"),
}
# -fno-trapping-math lets the compiler evaluate both sides of the activations' branches (blend, no
# jumps), which is what vectorises them; the kernels never read the floating-point exception flags.
# -march=native uses this CPU's vector width; the build hash includes the CPU's identity, so a cache
# shared by different machines holds one build per kind of CPU.
_CFLAGS = {"cpp": ("-O3", "-march=native", "-fno-trapping-math", "-fopenmp"), "cuda": ("-O3", "-DTRYON_WITH_CUDA")}
_CUDA_CFLAGS = ("-O3", "-DTRYON_WITH_CUDA")
_LDFLAGS = {"cpp": ("-fopenmp",), "cuda": ()}
_MARKER = "module.json"  # Written last into a complete build: {"name": module name, "library": file}.

_plugins: dict[tuple[str, Path, str | None], ModuleType] = {}  # (kind, sources, $TRYON_CACHE_DIR) -> module
_failures: dict[tuple[str, Path, str | None], str] = {}
_lock = threading.Lock()


def cache_dir() -> Path:
    """The folder holding the built kernels: $TRYON_CACHE_DIR/ops (default ~/.cache/tryon/ops)."""
    root = os.environ.get("TRYON_CACHE_DIR") or "~/.cache/tryon"
    return Path(root).expanduser() / "ops"


def load_plugin(kind: str) -> ModuleType:
    """The compiled extension of `kind` ("cpp" or "cuda"), built on first use and cached.

    Raises:
        ValueError: unknown `kind`.
        RuntimeError: the kernels cannot be built here (no GPU / CUDA toolkit, compiler error);
            the message says why. A failed build is not retried in the same process.
    """
    # Called on every op call: the cached lookup must stay cheap (no path arithmetic).
    key = (kind, SOURCE_DIR, os.environ.get("TRYON_CACHE_DIR"))
    module = _plugins.get(key)
    if module is not None:
        return module
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    with _lock:
        if key in _plugins:
            return _plugins[key]
        if key in _failures:
            raise RuntimeError(_failures[key])
        try:
            module = _build(kind)
        except Exception as exc:
            reason = f"building the {kind} kernels of tryon.ops failed: {exc}".strip()
            _failures[key] = reason
            raise RuntimeError(reason) from exc
        _plugins[key] = module
        return module


def _check_toolchain(kind: str) -> None:
    if kind != "cuda":
        return
    from torch.utils.cpp_extension import CUDA_HOME

    if torch.version.cuda is None:
        raise RuntimeError(f"torch {torch.__version__} is a CPU-only build; the cuda kernels need a CUDA build")
    if not torch.cuda.is_available():
        raise RuntimeError("the cuda kernels need a CUDA GPU, and torch.cuda.is_available() is False")
    if CUDA_HOME is None:
        raise RuntimeError("the cuda kernels need the CUDA toolkit: set CUDA_HOME or put nvcc on PATH")


def _build_hash(kind: str) -> str:
    h = hashlib.sha256()

    def add(label: str, value: object) -> None:
        h.update(f"{label}={value}\n".encode())

    add("kind", kind)
    add("torch", torch.__version__)
    add("python", f"{sys.implementation.cache_tag} {platform.machine()} {platform.system()}")
    add("cflags", _CFLAGS[kind])
    add("ldflags", _LDFLAGS[kind])
    add("cxx", os.environ.get("CXX", ""))
    add("cpu", _cpu_identity())
    if kind == "cuda":
        add("cuda", torch.version.cuda)
        add("cuda_cflags", _CUDA_CFLAGS)
        add("arch", os.environ.get("TORCH_CUDA_ARCH_LIST", ""))
        add("devices", [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())])
    for name in sorted({*_HEADERS, *_SOURCES[kind]}):
        add("file", name)
        h.update((SOURCE_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def _cpu_identity() -> str:
    """Model and instruction-set flags of this CPU (what -march=native compiles for)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU part")  # x86 and Arm spellings.
    found = {line.split(":", 1)[0].strip(): line for line in lines if ":" in line}
    return "\n".join(found[k] for k in wanted if k in found) or platform.machine()


def _build(kind: str) -> ModuleType:
    _check_toolchain(kind)
    name = f"tryon_ops_{kind}_{_build_hash(kind)}"
    folder = cache_dir() / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    module = _import_built(folder)
    if module is not None:
        return module
    with _exclusive(folder.parent / f"{name}.lock"):
        module = _import_built(folder)  # Another process may have finished it while we waited.
        if module is not None:
            return module
        return _build_into(kind, name, folder)


def _build_into(kind: str, name: str, folder: Path) -> ModuleType:
    from torch.utils.cpp_extension import load

    logger.warning("tryon.ops: building the %s kernels into %s (first use; this takes a minute)", kind, folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder.parent))
    try:
        module = load(
            name=name,
            sources=[str(SOURCE_DIR / s) for s in _SOURCES[kind]],
            extra_cflags=list(_CFLAGS[kind]),
            extra_cuda_cflags=list(_CUDA_CFLAGS),
            extra_ldflags=list(_LDFLAGS[kind]),
            extra_include_paths=[str(SOURCE_DIR)],
            build_directory=str(tmp),
            with_cuda=kind == "cuda",
            verbose=os.environ.get("TRYON_OPS_VERBOSE", "") not in ("", "0"),
        )
        library = Path(str(module.__file__)).name
        (tmp / _MARKER).write_text(json.dumps({"name": module.__name__, "library": library}))
        if folder.exists():  # An incomplete folder (no marker) left by someone else: replace it.
            shutil.rmtree(folder, ignore_errors=True)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("tryon.ops: %s kernels built in %s", kind, folder)
    return module


def _import_built(folder: Path) -> ModuleType | None:
    """The module of a complete build in `folder`, or None if there is none."""
    try:
        meta = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return None
    library = folder / meta["library"]
    if not library.is_file():
        return None
    loader = importlib.machinery.ExtensionFileLoader(meta["name"], str(library))
    spec = importlib.util.spec_from_file_location(meta["name"], str(library), loader=loader)
    if spec is None:
        return None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    logger.info("tryon.ops: loaded kernels from %s", library)
    return module


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # No flock here: the atomic rename alone keeps builds from colliding.
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _kernels_for(x: torch.Tensor) -> ModuleType:
    kind = {"cuda": "cuda", "cpu": "cpp"}.get(x.device.type)
    if kind is None:
        raise ValueError(f"tryon.ops has no compiled kernels for {x.device.type} tensors; use impl='ref'")
    return load_plugin(kind)


# ---------------------------------------------------------------------------------------------------
# bias_act


@dataclass(frozen=True)
class _BiasActSpec:
    dim: int  # Dimension of x that the bias runs along.
    act: int  # Activation code of the kernels (ActivationSpec.cuda_idx).
    alpha: float  # Activation shape parameter.
    gain: float  # Output scale.
    clamp: float  # Clamp bound, -1 for none.
    second_grad: str  # d(dx)/d(x, b): "value" (non-zero), "zero" (a zero tensor, as the reference's
    #                   relu/lrelu give) or "none" (no dependence at all, as for linear).


@functools.lru_cache(maxsize=256)
def _bias_act_spec(dim: int, act: str, alpha: float | None, gain: float | None, clamp: float | None) -> _BiasActSpec:
    if act not in activation_funcs:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(activation_funcs)}")
    a = activation_funcs[act]
    return _BiasActSpec(
        dim=dim,
        act=a.cuda_idx,
        alpha=float(alpha if alpha is not None else a.def_alpha),
        gain=float(gain if gain is not None else a.def_gain),
        clamp=float(clamp) if clamp is not None else -1.0,
        second_grad="value" if a.has_2nd_grad else ("none" if act == "linear" else "zero"),
    )


def _bias_act_kernel(
    spec: _BiasActSpec,
    order: int,
    x: torch.Tensor,
    b: torch.Tensor | None,
    g1: torch.Tensor | None = None,
    g2: torch.Tensor | None = None,
) -> torch.Tensor:
    out: torch.Tensor = _kernels_for(x).bias_act(
        x, b, g1, g2, spec.dim, spec.act, order, spec.alpha, spec.gain, spec.clamp
    )
    return out


def _sum_to_bias(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.sum(dim=[i for i in range(t.ndim) if i != dim])


class _BiasAct(torch.autograd.Function):
    """y = clamp(act(x + b) * gain)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, b: torch.Tensor | None, spec: _BiasActSpec) -> torch.Tensor:
        ctx.spec = spec
        ctx.save_for_backward(x, b)
        return _bias_act_kernel(spec, 0, x, b)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, b = ctx.saved_tensors
        spec: _BiasActSpec = ctx.spec
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
            return None, None, None
        dx = _BiasActGrad.apply(dy, x, b, spec)
        db = _sum_to_bias(dx, spec.dim) if ctx.needs_input_grad[1] else None
        return (dx if ctx.needs_input_grad[0] else None), db, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * y'(x + b): the kernel's order-1 mode, itself differentiable once more."""

    @staticmethod
    def forward(
        ctx: Any, dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor | None, spec: _BiasActSpec
    ) -> torch.Tensor:
        ctx.spec = spec
        ctx.save_for_backward(dy, x, b)
        return _bias_act_kernel(spec, 1, x, b, dy)

    @staticmethod
    def backward(ctx: Any, d_dx: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        dy, x, b = ctx.saved_tensors
        spec: _BiasActSpec = ctx.spec
        d_dy = d_x = d_b = None
        if ctx.needs_input_grad[0]:
            d_dy = _BiasActGrad.apply(d_dx, x, b, spec)  # dx is linear in dy.
        if spec.second_grad == "value" and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = _BiasActGrad2.apply(d_dx, dy, x, b, spec)
            if ctx.needs_input_grad[2]:
                d_b = _sum_to_bias(d_x, spec.dim)
        elif spec.second_grad == "zero":
            # Zero, but a tensor where the reference's autograd gives one: an optimizer still steps
            # a parameter whose gradient is zero (momentum), and skips one whose gradient is None.
            d_x = torch.zeros_like(x) if ctx.needs_input_grad[1] else None
            d_b = torch.zeros_like(b) if ctx.needs_input_grad[2] else None
        return d_dy, (d_x if ctx.needs_input_grad[1] else None), d_b, None


class _BiasActGrad2(torch.autograd.Function):
    """d_dx * dy * y''(x + b): the kernel's order-2 mode. Third derivatives are not implemented."""

    @staticmethod
    def forward(
        ctx: Any,
        d_dx: torch.Tensor,
        dy: torch.Tensor,
        x: torch.Tensor,
        b: torch.Tensor | None,
        spec: _BiasActSpec,
    ) -> torch.Tensor:
        return _bias_act_kernel(spec, 2, x, b, d_dx, dy)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        raise NotImplementedError("tryon.ops: third derivatives of bias_act are not implemented; use impl='ref'")


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """`tryon.ops.bias_act` with the compiled kernels of x's device (arguments as there)."""
    spec = _bias_act_spec(dim, act, alpha, gain, clamp)
    if b is not None:
        b = b.to(x.dtype)  # As the reference; autograd returns db in b's own dtype.
    out: torch.Tensor = _BiasAct.apply(x, b, spec)
    return out


# ---------------------------------------------------------------------------------------------------
# upfirdn2d


@dataclass(frozen=True)
class _Resampling:
    up: tuple[int, int]  # (x, y) upsampling factors.
    down: tuple[int, int]  # (x, y) downsampling factors.
    padding: tuple[int, int, int, int]  # (x0, x1, y0, y1) padding of the upsampled image.
    flip_filter: bool  # False = convolution, True = correlation.
    gain: float  # Overall gain of the filter.

    def adjoint(self, f: torch.Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> _Resampling:
        """The resampling whose upfirdn2d is the transpose (the gradient) of this one's.

        Swap up and down, flip the filter, and pad so that tap j of output o meets input i exactly
        when it did in the forward pass; the output has the forward input's size.
        """
        fw, fh = int(f.shape[-1]), int(f.shape[0])
        (upx, upy), (downx, downy) = self.up, self.down
        px0, _, py0, _ = self.padding
        (H, W), (OH, OW) = in_hw, out_hw
        padding = (
            fw - px0 - 1,
            W * upx - OW * downx + px0 - upx + 1,
            fh - py0 - 1,
            H * upy - OH * downy + py0 - upy + 1,
        )
        return replace(self, up=self.down, down=self.up, padding=padding, flip_filter=not self.flip_filter)


class _Upfirdn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, f: torch.Tensor, r: _Resampling) -> torch.Tensor:
        (upx, upy), (downx, downy) = r.up, r.down
        y: torch.Tensor = _kernels_for(x).upfirdn2d(x, f, upx, upy, downx, downy, *r.padding, r.flip_filter, r.gain)
        ctx.save_for_backward(f)
        ctx.resampling = r
        ctx.hw = (tuple(x.shape[2:]), tuple(y.shape[2:]))
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (f,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        r: _Resampling = ctx.resampling
        dx = _Upfirdn2d.apply(dy, f, r.adjoint(f, *ctx.hw))
        return dx, None, None


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: tuple[int, int] = (1, 1),
    down: tuple[int, int] = (1, 1),
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """`tryon.ops.upfirdn2d` with the compiled kernels of x's device (arguments as parsed there).

    The filter gets no gradient: it must not require one.
    """
    if f.requires_grad and torch.is_grad_enabled():
        raise ValueError("the compiled upfirdn2d does not differentiate the filter f; use impl='ref'")
    r = _Resampling(
        up=(int(up[0]), int(up[1])),
        down=(int(down[0]), int(down[1])),
        padding=(int(padding[0]), int(padding[1]), int(padding[2]), int(padding[3])),
        flip_filter=bool(flip_filter),
        gain=float(gain),
    )
    out: torch.Tensor = _Upfirdn2d.apply(x, f, r)
    return out
