"""Import of NVlabs stylegan2-ada-pytorch snapshots (`network-snapshot-*.pkl`).

Those pickles carry code. `read_nvlabs_pickle` uses a restricted unpickler that maps a short
allow-list of globals to rebuilders of our own (tensors, storages, plain dicts) and refuses everything
else; the source code stored inside the pickle is never executed. `convert_nvlabs_pickle` then builds
our networks from the recorded constructor arguments and saves them as a tryon checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import os
import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tryon.checkpoint.format import build_network, load_state_strict, network_classes, save_checkpoint
from tryon.errors import CheckpointError, InputError, UnsafePickleError
from tryon.labels import LabelSchema

# ----------------------------------------------------------------------------------------------------
# NVlabs pickles: a restricted unpickler.


@dataclasses.dataclass(frozen=True, slots=True)
class PersistentRecord:
    """What an NVlabs `persistence.persistent_class` object becomes here: its class name and the
    state (`__dict__`) it was pickled with. The module source it carries is never executed."""

    class_name: str
    state: dict[str, Any]
    version: int | None
    module_src_sha256: str | None


class _PlainDict(dict[Any, Any]):
    """Stands in for `dnnlib.util.EasyDict` (a dict subclass); pickles rebuild it with NEWOBJ."""

    def __setstate__(self, state: Any) -> None:
        if state:
            raise UnsafePickleError("an EasyDict in the pickle carries unexpected object state")


def _rebuild_persistent_record(meta: Any) -> PersistentRecord:
    """Replaces `torch_utils.persistence._reconstruct_persistent_obj`: keeps the data, drops the code."""
    if not isinstance(meta, dict):
        raise UnsafePickleError("malformed persistent object in the pickle (meta is not a dict)")
    if meta.get("type") != "class":
        raise UnsafePickleError(f"unsupported persistent object type {meta.get('type')!r} in the pickle")
    class_name = meta.get("class_name")
    state = meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise UnsafePickleError("malformed persistent object in the pickle (class_name / state)")
    src = meta.get("module_src")
    version = meta.get("version")
    return PersistentRecord(
        class_name=class_name,
        state=dict(state),
        version=version if isinstance(version, int) else None,
        module_src_sha256=hashlib.sha256(src.encode()).hexdigest() if isinstance(src, str) else None,
    )


def _load_storage_bytes(data: Any) -> torch.TypedStorage:
    """Replaces `torch.storage._load_from_bytes`: the bytes are a legacy `torch.save` of one storage,
    read with torch's own restricted unpickler (weights_only=True)."""
    if not isinstance(data, bytes):
        raise UnsafePickleError("malformed tensor storage in the pickle (not bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage deprecation notices.
            storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsafePickleError(f"a tensor storage in the pickle could not be read safely: {first_line}") from exc
    if not isinstance(storage, torch.TypedStorage):
        raise UnsafePickleError(f"a tensor storage in the pickle holds a {type(storage).__name__}")
    return storage


def _rebuild_tensor(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """Replaces `torch._utils._rebuild_tensor_v2` (a view of a storage), checking every argument."""
    ints_ok = (
        isinstance(storage, torch.TypedStorage)
        and isinstance(storage_offset, int)
        and storage_offset >= 0
        and isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride)
        and all(isinstance(v, int) and v >= 0 for v in (*size, *stride))
    )
    if not ints_ok:
        raise UnsafePickleError("malformed tensor in the pickle")
    if backward_hooks or metadata:
        raise UnsafePickleError("a tensor in the pickle carries hooks or metadata")
    # Tensor.set_ would silently grow a storage that is too small: check the extent ourselves.
    extent = 0 if 0 in size else storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if extent > storage.size():
            raise UnsafePickleError(
                f"malformed tensor in the pickle: shape {list(size)} needs {extent} elements, "
                f"its storage has {storage.size()}"
            )
        tensor = torch.empty((0,), dtype=storage.dtype)
        try:
            tensor.set_(storage._untyped_storage, storage_offset, size, stride)
        except RuntimeError as exc:
            raise UnsafePickleError(f"malformed tensor in the pickle: {exc}") from exc
    return tensor


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None) -> Any:
    """Replaces `torch._utils._rebuild_parameter(_with_state)`: a plain tensor is all we need."""
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("malformed parameter in the pickle")
    if backward_hooks or state:
        raise UnsafePickleError("a parameter in the pickle carries hooks or state")
    return data


def _rebuild_set(items: Any = ()) -> set[Any]:
    """Replaces `builtins.set` (protocol <= 3 pickles sets as `set([...])`)."""
    if not isinstance(items, list | tuple):
        raise UnsafePickleError("malformed set in the pickle")
    return set(items)


def _rebuild_ordered_dict(items: Any = ()) -> dict[Any, Any]:
    """Replaces `collections.OrderedDict` (a plain dict keeps the order too)."""
    return dict(items)


class _NumpyDtype:
    """Stands in for a `numpy.dtype` of a plain number type (NVlabs modules keep numpy scalars such
    as `weight_gain = lr / np.sqrt(fan_in)`); pickles build it with REDUCE, then BUILD with its state."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags) for a plain number.
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise UnsafePickleError("malformed numpy dtype in the pickle")
        if any(item is not None for item in state[2:5]):
            raise UnsafePickleError("the pickle holds a structured numpy dtype, which network pickles do not")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


def _rebuild_numpy_dtype(name: Any, align: Any = False, copy: Any = True) -> _NumpyDtype:
    """Replaces `numpy.dtype`: only plain bool / int / float types."""
    if not isinstance(name, str) or not re.fullmatch(r"[biuf][1248]", name):
        raise UnsafePickleError(f"the pickle asks for numpy dtype {name!r}, which is not a plain number type")
    return _NumpyDtype(np.dtype(name))


def _rebuild_numpy_scalar(dtype: Any, data: Any = None) -> bool | int | float:
    """Replaces `numpy.core.multiarray.scalar`: a numpy number becomes a Python number."""
    if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise UnsafePickleError("malformed numpy scalar in the pickle")
    value: bool | int | float = np.frombuffer(data, dtype=dtype.dtype, count=1)[0].item()
    return value


def _rebuild_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """Replaces `_codecs.encode`, with which protocol-2 pickles write bytes: `encode(str, 'latin1')`."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("malformed bytes in the pickle")
    return text.encode("latin1")


# (module, name) in the pickle -> our rebuilder. Nothing else is ever looked up.
_NVLABS_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _rebuild_persistent_record,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("collections", "OrderedDict"): _rebuild_ordered_dict,
    ("dnnlib.util", "EasyDict"): _PlainDict,
    ("builtins", "set"): _rebuild_set,
    ("numpy", "dtype"): _rebuild_numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _rebuild_numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _rebuild_numpy_scalar,
    ("__builtin__", "set"): _rebuild_set,
    ("_codecs", "encode"): _rebuild_bytes,
}


class _NVlabsUnpickler(pickle.Unpickler):
    """Unpickles NVlabs snapshots into plain data: dicts, tensors and PersistentRecords."""

    def find_class(self, module: str, name: str) -> Any:
        rebuild = _NVLABS_GLOBALS.get((module, name))
        if rebuild is None:
            raise UnsafePickleError(
                f"the pickle asks for {module}.{name}, which is not on the allow-list for NVlabs "
                "network pickles (it may run code); refusing to load it"
            )
        return rebuild

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("the pickle uses persistent ids, which NVlabs network pickles do not; refusing it")


def read_nvlabs_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an NVlabs pickle into plain data without executing anything from it.

    Returns the top-level dict with PersistentRecord values for the networks. Raises
    UnsafePickleError for anything outside the allow-list, CheckpointError for a damaged file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = _NVlabsUnpickler(f).load()
    except FileNotFoundError:
        raise CheckpointError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a pickle") from None
    except CheckpointError:
        raise
    except Exception as exc:  # Includes RecursionError, MemoryError, pickle.UnpicklingError.
        raise CheckpointError(f"{path} is not a readable NVlabs network pickle: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path} is not an NVlabs stylegan2-ada-pytorch snapshot (expected a dict with G, D, G_ema; "
            f"got {type(data).__name__}; TensorFlow pickles are not supported)"
        )
    return data


def record_state_dict(record: PersistentRecord) -> dict[str, torch.Tensor]:
    """Flatten a module record's `_parameters` / `_buffers` / `_modules` tree into a state dict with
    dotted names, the way `nn.Module.state_dict()` does (non-persistent buffers left out)."""
    out: dict[str, torch.Tensor] = {}

    def visit(rec: Any, prefix: str) -> None:
        if not isinstance(rec, PersistentRecord):
            raise CheckpointError(f"module {prefix.rstrip('.') or '<root>'} in the pickle is not a network module")
        state = rec.state
        params = state.get("_parameters", {})
        buffers = state.get("_buffers", {})
        modules = state.get("_modules", {})
        skip = state.get("_non_persistent_buffers_set", set())
        if not all(isinstance(d, dict) for d in (params, buffers, modules)) or not isinstance(skip, set):
            raise CheckpointError(f"module {prefix.rstrip('.') or '<root>'} in the pickle has no parameter tree")
        for group in (params, {k: v for k, v in buffers.items() if k not in skip}):
            for key, value in group.items():
                if value is None:
                    continue
                if not isinstance(value, torch.Tensor):
                    raise CheckpointError(f"{prefix}{key} in the pickle is not a tensor")
                out[prefix + key] = value
        for key, child in modules.items():
            if child is not None:
                visit(child, f"{prefix}{key}.")

    visit(record, "")
    return out


def _plain_data(value: Any) -> Any:
    """JSON-able copy of plain data from the pickle; anything else becomes None."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain_data(v) for k, v in value.items() if isinstance(k, str | int)}
    if isinstance(value, list | tuple):
        return [_plain_data(v) for v in value]
    return None


def network_from_record(record: Any, what: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build our network from an NVlabs record (its init args/kwargs) and load its weights strictly.

    Returns (module in eval mode, its constructor kwargs as plain JSON data).
    """
    if not isinstance(record, PersistentRecord):
        raise CheckpointError(f"{what} in the pickle is not an NVlabs network ({type(record).__name__})")
    classes = {"Generator": network_classes()["Generator"], "Discriminator": network_classes()["Discriminator"]}
    cls = classes.get(record.class_name)
    if cls is None:
        raise CheckpointError(f"{what} in the pickle is a {record.class_name!r}; only {sorted(classes)} convert")
    init_args = record.state.get("_init_args", ())
    init_kwargs = record.state.get("_init_kwargs")
    if not isinstance(init_args, tuple | list) or not isinstance(init_kwargs, dict):
        raise CheckpointError(f"{what} in the pickle has no constructor arguments (_init_args/_init_kwargs)")
    try:
        bound = inspect.signature(cls).bind(*_plain_data(list(init_args)), **_plain_data(init_kwargs))
    except TypeError as exc:
        raise CheckpointError(f"{what}: its constructor arguments do not fit our {cls.__name__}: {exc}") from exc
    kwargs = dict(bound.arguments)
    module = build_network(cls, kwargs, what)
    load_state_strict(module, record_state_dict(record), f"{what} of the pickle")
    return module.eval().requires_grad_(False), kwargs


def convert_nvlabs_pickle(
    pkl_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    label_schema: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert an NVlabs stylegan2-ada-pytorch snapshot into a tryon checkpoint (G_ema, G, D).

    Nothing from the pickle is executed (see `read_nvlabs_pickle`). `label_schema` optionally names
    the condition vector (NVlabs snapshots only know its size). Returns the checkpoint folder.
    """
    pkl_path = Path(pkl_path)
    data = read_nvlabs_pickle(pkl_path)
    if data.get("G_ema") is None:
        raise CheckpointError(f"{pkl_path} has no G_ema network (keys: {', '.join(map(str, data))})")
    networks: dict[str, torch.nn.Module] = {}
    net_config: dict[str, dict[str, Any]] = {}
    sources: dict[str, dict[str, Any]] = {}
    for name in ("G_ema", "G", "D"):
        record = data.get(name)
        if record is None:
            continue
        networks[name], kwargs = network_from_record(record, name)
        net_config[name] = {"kwargs": kwargs}
        sources[name] = {
            "class_name": record.class_name,
            "persistence_version": record.version,
            "module_src_sha256": record.module_src_sha256,
        }
    G_ema = networks["G_ema"]
    c_dim = int(getattr(G_ema, "c_dim", 0))
    if label_schema is not None and LabelSchema.from_json(label_schema).dim != c_dim:
        raise InputError(
            f"the label schema describes {LabelSchema.from_json(label_schema).dim} label entries, "
            f"but the network's c_dim is {c_dim}"
        )
    training: dict[str, Any] = {
        "imported_from": {
            "format": "nvlabs-stylegan2-ada-pytorch-pickle",
            "file": pkl_path.name,
            "sha256": _sha256_file(pkl_path),
            "networks": sources,
        },
    }
    if isinstance(data.get("training_set_kwargs"), dict):
        training["training_set_kwargs"] = _plain_data(data["training_set_kwargs"])
    augment = data.get("augment_pipe")
    if isinstance(augment, PersistentRecord):
        p = augment.state.get("_buffers", {}).get("p")
        if isinstance(p, torch.Tensor) and p.numel() == 1:
            training["augment_p"] = float(p)
    config = {
        "networks": net_config,
        "label_schema": dict(label_schema) if label_schema is not None else None,
        "training": training,
    }
    return save_checkpoint(out_dir, networks, config, overwrite=overwrite)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
