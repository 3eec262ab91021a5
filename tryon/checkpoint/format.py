"""The checkpoint format: a folder of safetensors weights + config.json, written atomically and loaded
strictly (see the package docstring for the layout), and the allow-list of network classes."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from tryon.errors import CheckpointError
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
    write_folder_atomically(directory, blobs, overwrite=overwrite)
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


def write_folder_atomically(directory: Path, files: Mapping[str, bytes], *, overwrite: bool) -> None:
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
        module = build_network(cls, entry["kwargs"], f"network {name!r}")
        load_state_strict(module, state, f"{path}")
        modules[name] = module.to(device).eval().requires_grad_(False)
    return Checkpoint(
        directory=directory,
        networks=modules,
        config=doc,
        label_schema=doc.get("label_schema"),
        training=doc.get("training"),
    )


def build_network(cls: type[torch.nn.Module], kwargs: Mapping[str, Any], what: str) -> torch.nn.Module:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, KeyError, AssertionError) as exc:
        raise CheckpointError(f"{what}: cannot build {cls.__name__} from its kwargs: {exc}") from exc


def load_state_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
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
