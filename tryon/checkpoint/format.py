"""Checkpoints: safetensors weights + a JSON config, loaded strictly; safe import of NVlabs pickles.

A checkpoint is a folder:

    config.json           {"format": "tryon-checkpoint", "format_version": 1,
                           "networks": {NAME: {"class": "Generator", "kwargs": {...},
                                               "file": "NAME.safetensors", "sha256": "..."}},
                           "label_schema": {...} | null, "training": {...} | null}
    NAME.safetensors      the network's state dict: parameters and (persistent) buffers

Loading never unpickles. Each network is rebuilt from an allow-list of our own classes (see
`network_classes`) with the recorded constructor kwargs, and its weights are loaded with
`strict=True` after the file's sha256, every key, shape and dtype have been checked.

NVlabs stylegan2-ada-pytorch snapshots (`network-snapshot-*.pkl`) are pickles that carry code.
`convert_nvlabs_pickle` reads them with a restricted unpickler that maps a short allow-list of
globals to rebuilders of our own (tensors, storages, plain dicts) and refuses everything else; the
source code stored inside the pickle is never executed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import io
import json
import os
import pickle
import re
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from tryon.errors import CheckpointError, InputError, UnsafePickleError
from tryon.labels import LabelSchema

FORMAT_NAME = "tryon-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_SUFFIX = ".safetensors"

_NETWORK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
_CONFIG_KEYS = ("networks", "label_schema", "training")
_EXTRA_NETWORK_CLASSES: dict[str, type[torch.nn.Module]] = {}

# ----------------------------------------------------------------------------------------------------
# The allow-list of network classes.


def register_network_class(cls: type[torch.nn.Module], name: str | None = None) -> None:
    """Allow checkpoints to hold networks of class `cls` (our own modules only, e.g. an encoder).

    The class is recorded in config.json under `name` (default: `cls.__name__`); loading looks the
    name up here, never imports it by string.
    """
    name = name or cls.__name__
    known = network_classes()
    if name in known and known[name] is not cls:
        raise ValueError(f"network class name {name!r} is already registered for {known[name]!r}")
    _EXTRA_NETWORK_CLASSES[name] = cls


def network_classes() -> dict[str, type[torch.nn.Module]]:
    """{class name in config.json: class} of every network a checkpoint may hold."""
    from tryon.nn import Discriminator, Generator

    return {"Generator": Generator, "Discriminator": Discriminator, **_EXTRA_NETWORK_CLASSES}


def _class_name_of(module: torch.nn.Module) -> str:
    for name, cls in network_classes().items():
        if type(module) is cls:
            return name
    known = ", ".join(sorted(network_classes()))
    raise CheckpointError(
        f"cannot save a {type(module).__name__}: not a registered network class ({known}); "
        "see tryon.checkpoint.register_network_class"
    )


# ----------------------------------------------------------------------------------------------------
# Save.


@dataclasses.dataclass
class Checkpoint:
    """What `load_checkpoint` returns. Networks are in eval mode with requires_grad False."""

    directory: Path
    networks: dict[str, torch.nn.Module]    # {name: module}, e.g. {"G_ema": Generator(...)}.
    config: dict[str, Any]                  # The parsed config.json.
    label_schema: dict[str, Any] | None     # Raw schema (see LabelSchema.from_json), None = no names.
    training: dict[str, Any] | None         # Free-form training / provenance metadata.


def save_checkpoint(
    directory: str | os.PathLike[str],
    networks: Mapping[str, torch.nn.Module],
    config: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a checkpoint folder atomically: either the whole new checkpoint or nothing is there.

    networks: {name: module}, e.g. {"G_ema": G_ema, "G": G, "D": D}; each module's class must be
        registered (`network_classes`).
    config: optional keys
        "networks": {name: {"kwargs": {...}}}  constructor kwargs of each network (required unless
                    the module has a dict attribute `init_kwargs`);
        "label_schema": dict | None            names of the condition vector (see LabelSchema);
        "training": dict | None                free-form metadata (JSON-serialisable).
    overwrite: replace an existing checkpoint at `directory` (never a folder that is not one).

    Returns the checkpoint folder.
    """
    directory = Path(directory)
    config = dict(config or {})
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown checkpoint config keys {unknown}; allowed: {list(_CONFIG_KEYS)}")
    if not networks:
        raise ValueError("save_checkpoint needs at least one network")
    net_cfg = config.get("networks") or {}
    extra = sorted(set(net_cfg) - set(networks))
    if extra:
        raise ValueError(f"config['networks'] names networks that are not being saved: {extra}")
    label_schema = config.get("label_schema")
    if label_schema is not None:
        # Stored with explicit offsets and dim (other keys kept), so readers need no defaults.
        label_schema = {**label_schema, **LabelSchema.from_json(label_schema).to_json()}

    entries: dict[str, dict[str, Any]] = {}
    blobs: dict[str, bytes] = {}
    for name, module in networks.items():
        if not _NETWORK_NAME_RE.match(name):
            raise ValueError(f"bad network name {name!r} (letters, digits, '_' or '-', at most 64)")
        kwargs = (net_cfg.get(name) or {}).get("kwargs")
        if kwargs is None:
            kwargs = getattr(module, "init_kwargs", None)
        if not isinstance(kwargs, Mapping):
            raise ValueError(
                f"no constructor kwargs for network {name!r}: pass config['networks'][{name!r}]['kwargs']"
            )
        tensors = {
            key: value.detach().to("cpu", copy=True).contiguous() for key, value in module.state_dict().items()
        }
        cls_name = _class_name_of(module)
        blob = safetensors.torch.save(tensors, metadata={"format": "pt", "network": name, "class": cls_name})
        file_name = name + WEIGHTS_SUFFIX
        blobs[file_name] = blob
        entries[name] = {
            "class": cls_name,
            "kwargs": _to_json_value(kwargs, f"kwargs of {name}"),
            "file": file_name,
            "sha256": hashlib.sha256(blob).hexdigest(),
        }
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "networks": entries,
        "label_schema": _to_json_value(label_schema, "label_schema"),
        "training": _to_json_value(config.get("training"), "training"),
    }
    blobs[CONFIG_FILE] = (json.dumps(doc, indent=2) + "\n").encode()
    _write_folder_atomically(directory, blobs, overwrite=overwrite)
    return directory


def _to_json_value(value: Any, what: str) -> Any:
    """A deep copy of `value` as plain JSON types (tuples become lists); refuse anything else."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{what}: keys must be strings, got {key!r}")
            out[key] = _to_json_value(item, what)
        return out
    if isinstance(value, list | tuple):
        return [_to_json_value(item, what) for item in value]
    raise ValueError(f"{what}: {type(value).__name__} is not JSON-serialisable")


def _write_folder_atomically(directory: Path, files: Mapping[str, bytes], *, overwrite: bool) -> None:
    """Write `files` into a temporary sibling folder, fsync, then rename it to `directory`."""
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir():
            raise CheckpointError(f"{directory} exists and is not a folder")
        if any(directory.iterdir()):
            if not overwrite:
                raise CheckpointError(f"{directory} already exists (use --force / overwrite=True to replace it)")
            if not (directory / CONFIG_FILE).is_file():
                raise CheckpointError(f"refusing to replace {directory}: it is not a checkpoint (no {CONFIG_FILE})")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()  # Unlike tempfile.mkdtemp, respects the umask (the folder stays readable by others).
    try:
        for file_name, data in files.items():
            with open(tmp / file_name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
        _fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # Not every platform/file system lets us open a folder.
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ----------------------------------------------------------------------------------------------------
# Load.


def read_checkpoint_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a checkpoint's config.json (no weights are read)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"no checkpoint at {directory}: folder not found")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a checkpoint: {CONFIG_FILE} is missing")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a tryon checkpoint config (format must be {FORMAT_NAME!r})")
    version = doc.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version!r} is not supported (this tryon reads 1..{FORMAT_VERSION})"
        )
    nets = doc.get("networks")
    if not isinstance(nets, dict) or not nets:
        raise CheckpointError(f"{path}: 'networks' must be a non-empty object")
    for name, entry in nets.items():
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("class"), str)
            and isinstance(entry.get("kwargs"), dict)
            and isinstance(entry.get("file"), str)
            and isinstance(entry.get("sha256"), str)
        )
        if not ok:
            raise CheckpointError(f"{path}: network {name!r} needs 'class', 'kwargs', 'file' and 'sha256'")
        if Path(entry["file"]).name != entry["file"] or entry["file"] in ("", ".", ".."):
            raise CheckpointError(f"{path}: network {name!r} names a file outside the checkpoint")
    for key in ("label_schema", "training"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise CheckpointError(f"{path}: {key!r} must be an object or null")
    return doc


def load_checkpoint(
    directory: str | os.PathLike[str],
    names: Iterable[str] | None = ("G_ema",),
    device: str | torch.device = "cpu",
) -> Checkpoint:
    """Load networks `names` (None = all) from a checkpoint folder, strictly.

    Raises CheckpointError for a missing folder or file, bad JSON, an unknown class, a sha256
    mismatch, or weights that do not match the network (missing / unexpected keys, shapes, dtypes).
    """
    directory = Path(directory)
    doc = read_checkpoint_config(directory)
    entries = doc["networks"]
    if isinstance(names, str):
        names = (names,)
    wanted = list(entries) if names is None else list(names)
    modules: dict[str, torch.nn.Module] = {}
    for name in wanted:
        if name not in entries:
            raise CheckpointError(
                f"checkpoint {directory} has no network {name!r} (it has: {', '.join(entries)})"
            )
        entry = entries[name]
        cls = network_classes().get(entry["class"])
        if cls is None:
            known = ", ".join(sorted(network_classes()))
            raise CheckpointError(f"network {name!r}: unknown class {entry['class']!r} (known: {known})")
        path = directory / entry["file"]
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {directory} is incomplete: {entry['file']} is missing") from None
        digest = hashlib.sha256(blob).hexdigest()
        if digest != entry["sha256"]:
            raise CheckpointError(
                f"{path} is corrupt or was modified: sha256 {digest[:16]}… does not match config.json "
                f"({entry['sha256'][:16]}…)"
            )
        try:
            state = safetensors.torch.load(blob)
        except Exception as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
        module = _build_network(cls, entry["kwargs"], f"network {name!r}")
        _load_state_strict(module, state, f"{path}")
        modules[name] = module.to(device).eval().requires_grad_(False)
    return Checkpoint(
        directory=directory,
        networks=modules,
        config=doc,
        label_schema=doc.get("label_schema"),
        training=doc.get("training"),
    )


def _build_network(cls: type[torch.nn.Module], kwargs: Mapping[str, Any], what: str) -> torch.nn.Module:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, KeyError, AssertionError) as exc:
        raise CheckpointError(f"{what}: cannot build {cls.__name__} from its kwargs: {exc}") from exc


def _load_state_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """`module.load_state_dict(state, strict=True)`, after checking keys, shapes and dtypes (which
    load_state_dict would silently cast) and raising CheckpointError with a readable summary."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    for key, ref in expected.items():
        value = state.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != tuple(ref.shape):
            problems.append(f"{key} has shape {list(value.shape)}, the network expects {list(ref.shape)}")
        elif value.dtype != ref.dtype:
            problems.append(f"{key} has dtype {value.dtype}, the network expects {ref.dtype}")
    if problems:
        raise CheckpointError(
            f"weights in {source} do not match {type(module).__name__}: {'; '.join(problems[:4])}"
            + (f"; and {len(problems) - 4} more problems" if len(problems) > 4 else "")
        )
    module.load_state_dict(dict(state), strict=True)


def _few(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)})"


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
    module = _build_network(cls, kwargs, what)
    _load_state_strict(module, record_state_dict(record), f"{what} of the pickle")
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


# ----------------------------------------------------------------------------------------------------
# Export.

SAMPLE_GRID_FILE = "sample_grid.png"
MODEL_CARD_FILE = "MODEL_CARD.md"


def export_checkpoint(
    snapshot: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    names: Iterable[str] = ("G_ema", "D"),
    *,
    overwrite: bool = False,
    kimg_offset: float = 0.0,
) -> Path:
    """Copy networks `names` of a checkpoint (a training snapshot) into a new checkpoint folder, atomically,
    with the snapshot's label schema and training metadata, its sample grid (samples.png) as
    sample_grid.png, and the model card of the folder being replaced. The weight files are copied byte
    for byte after `load_checkpoint` has checked that each one loads strictly.

    kimg_offset: the kimg the run had already been trained for when it started from other weights (a
    training campaign's `kimg_offset`); the exported metadata then records kimg = offset + the run's
    kimg (and the run's own as run_kimg), so model cards and fitted models name the model's real age.
    """
    snapshot, directory = Path(snapshot), Path(directory)
    names = list(names)
    if not names:
        raise InputError("name at least one network to export")
    ckpt = load_checkpoint(snapshot, names=names)
    doc = dict(ckpt.config)
    doc["networks"] = {name: doc["networks"][name] for name in names}
    training = doc.get("training")
    if kimg_offset and isinstance(training, dict) and "kimg" in training:
        doc["training"] = {**training, "kimg": round(kimg_offset + float(training["kimg"]), 3),
                           "run_kimg": training["kimg"], "kimg_offset": kimg_offset}
    files = {entry["file"]: (snapshot / entry["file"]).read_bytes() for entry in doc["networks"].values()}
    for entry in doc["networks"].values():
        if hashlib.sha256(files[entry["file"]]).hexdigest() != entry["sha256"]:
            raise CheckpointError(f"{snapshot / entry['file']} changed while it was being exported")
    files[CONFIG_FILE] = (json.dumps(doc, indent=2) + "\n").encode()
    extras = [(snapshot / "samples.png", SAMPLE_GRID_FILE), (snapshot / SAMPLE_GRID_FILE, SAMPLE_GRID_FILE),
              (directory / MODEL_CARD_FILE, MODEL_CARD_FILE)]
    for source, target in extras:
        if source.is_file() and target not in files:
            files[target] = source.read_bytes()
    _write_folder_atomically(directory, files, overwrite=overwrite)
    return directory
