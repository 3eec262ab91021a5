"""Choosing between the reference and the compiled implementation of an op.

The compiled kernels live in `tryon.ops._fused`, which builds them lazily (ninja, cached by a hash
of the sources). Nothing here runs at import time.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

logger = logging.getLogger("tryon.ops")

IMPLS = ("auto", "cuda", "cpp", "ref")

# Ops whose C++ CPU kernel beats `ref` in benchmarks/bench_ops.py; `auto` uses it on CPU tensors.
AUTO_CPP_OPS: frozenset[str] = frozenset({"bias_act", "upfirdn2d"})

# What impl="auto" means in the current context (see `use_impl`).
_auto_means: contextvars.ContextVar[str] = contextvars.ContextVar("tryon_ops_auto", default="auto")

_lock = threading.Lock()
_failed: dict[str, str] = {}  # kernel kind ("cuda" / "cpp") -> why it could not be built
_backend_seen: dict[str, str] = {}  # "<op>/<device type>" -> the implementation last used


def _load(kind: str) -> Any:
    from tryon.ops import _fused

    return _fused.load_plugin(kind)


def compiled_op(name: str, x: torch.Tensor, impl: str) -> Callable[..., torch.Tensor] | None:
    """The compiled implementation of op `name` for tensor `x`, or None to use `ref`.

    Raises:
        ValueError: `impl` is not one of IMPLS, or names a kernel for another device.
        RuntimeError: `impl` names a compiled kernel explicitly and it cannot be built.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        impl = _auto_means.get()
    device = x.device.type
    kind: str | None
    if impl == "ref":
        kind = None
    elif impl == "auto":
        kind = "cuda" if device == "cuda" else ("cpp" if device == "cpu" and name in AUTO_CPP_OPS else None)
    else:
        want = "cuda" if impl == "cuda" else "cpu"
        if device != want:
            raise ValueError(f"impl={impl!r} needs a {want} tensor, got one on {device}")
        kind = impl
    fn = None
    if kind is not None:
        fn = _get(name, kind, explicit=impl != "auto")
    _note_backend(name, device, kind if fn is not None and kind is not None else "ref")
    return fn


@contextlib.contextmanager
def use_impl(impl: str) -> Iterator[None]:
    """Make every op called with impl="auto" in this context use `impl` instead.

    For whole networks: `with tryon.ops.use_impl("ref"): G(z, c)`.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    token = _auto_means.set(impl)
    try:
        yield
    finally:
        _auto_means.reset(token)


def _get(name: str, kind: str, explicit: bool) -> Callable[..., torch.Tensor] | None:
    if kind in _failed and not explicit:
        return None
    try:
        with _lock:
            _load(kind)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".strip()
        if explicit:
            raise RuntimeError(f"could not build the {kind} kernels of tryon.ops: {reason}") from exc
        with _lock:
            first = kind not in _failed
            _failed[kind] = reason
        if first:
            warnings.warn(
                f"tryon.ops: the {kind} kernels could not be built ({reason.splitlines()[0]}); "
                "falling back to the slower reference implementation (impl='ref').",
                RuntimeWarning,
                stacklevel=4,
            )
            logger.warning("ops backend for %s: ref (build failed: %s)", kind, reason)
        return None
    from tryon.ops import _fused

    fn: Callable[..., torch.Tensor] = getattr(_fused, name)
    return fn


def _note_backend(name: str, device: str, backend: str) -> None:
    key = f"{name}/{device}"
    if _backend_seen.get(key) != backend:
        _backend_seen[key] = backend
        logger.info("ops backend: %s on %s uses %s", name, device, backend)


def backends() -> dict[str, str]:
    """The implementation each op last used, per device type: {"bias_act/cpu": "ref", ...}."""
    return dict(_backend_seen)


def build_failures() -> dict[str, str]:
    """Why a kernel kind could not be built, if it was tried and failed."""
    return dict(_failed)
