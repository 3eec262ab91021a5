"""Training snapshots: a checkpoint folder plus the state needed to resume exactly — never pickled.

A snapshot is a tryon checkpoint folder (see `tryon.checkpoint`: config.json + G.safetensors,
D.safetensors, G_ema.safetensors) with three more files:

    resume.safetensors   optimiser moments and step counts, the loss's running mean path length,
                         the torch and numpy RNG states (uint8 / uint32 tensors)
    resume.json          counters (images seen, step, tick), seed, augmentation p and the ADA
                         accumulator, the optimisers' hyperparameters, the rest of the RNG states
    samples.png          the sample grid of G_ema at this point

The folder is written under a temporary name and renamed into place, so a snapshot is either
complete or absent. Loading reads JSON and safetensors only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from training.pack import is_pack, unpack_snapshot
from tryon.checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint
from tryon.errors import CheckpointError, InputError

RESUME_TENSORS = "resume.safetensors"
RESUME_JSON = "resume.json"
SAMPLES_FILE = "samples.png"
SNAPSHOT_PREFIX = "network-snapshot-"
RESUME_FORMAT = "tryon-resume"
RESUME_VERSION = 1
TRAINED_NETWORKS = ("G", "D", "G_ema")


@dataclasses.dataclass
class ResumeState:
    """Everything besides the network weights that a resumed run needs to continue exactly."""

    cur_nimg: int                                   # Images shown to D so far.
    batch_idx: int                                  # Training steps done so far.
    cur_tick: int                                   # Progress ticks done so far.
    seed: int                                       # The run's seed (all randomness derives from it).
    augment_p: float                                # Current augmentation probability.
    ada: dict[str, Any]                             # AdaController accumulator (sign_sum, sign_count).
    pl_mean: float                                  # Running mean path length.
    optimizers: dict[str, dict[str, Any]]           # {"G": opt.state_dict(), "D": ...}.
    rng: dict[str, Any] = dataclasses.field(default_factory=dict)  # Global RNG states (see capture_rng).
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # Free-form (e.g. kimg at start).


def snapshot_name(cur_nimg: int) -> str:
    """`network-snapshot-000004.000`: the folder name of a snapshot after `cur_nimg` images."""
    return f"{SNAPSHOT_PREFIX}{cur_nimg / 1000:010.3f}"


# ----------------------------------------------------------------------------------------------------
# RNG states.


def capture_rng() -> dict[str, Any]:
    """The global RNG states: torch (CPU and every CUDA device), numpy's legacy global, Python's."""
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.uint32).view(np.int32).copy()),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss_next": py_gauss},
    }
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch_cpu"])
    cuda_states = state.get("torch_cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    npy = state["numpy"]
    keys = npy["keys"].numpy().view(np.uint32)
    np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))


# ----------------------------------------------------------------------------------------------------
# Flattening to (tensors, JSON).


def _flatten(resume: ResumeState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    optim_json: dict[str, Any] = {}
    for name, sd in resume.optimizers.items():
        keys: dict[str, list[str]] = {}
        for idx, param_state in sd["state"].items():
            keys[str(idx)] = []
            for key, value in param_state.items():
                if not isinstance(value, torch.Tensor):
                    value = torch.tensor(value)
                tensors[f"opt.{name}.{idx}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
                keys[str(idx)].append(key)
        groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
        optim_json[name] = {"param_groups": groups, "state_keys": keys}
    tensors["loss.pl_mean"] = torch.tensor(float(resume.pl_mean), dtype=torch.float32)
    rng_json: dict[str, Any] = {}
    if resume.rng:
        tensors["rng.torch_cpu"] = resume.rng["torch_cpu"].clone()
        for i, s in enumerate(resume.rng["torch_cuda"]):
            tensors[f"rng.torch_cuda.{i}"] = s.clone()
        tensors["rng.numpy_keys"] = resume.rng["numpy"]["keys"].clone()
        rng_json = {
            "num_cuda": len(resume.rng["torch_cuda"]),
            "numpy": {k: v for k, v in resume.rng["numpy"].items() if k != "keys"},
            "python": resume.rng["python"],
        }
    doc = {
        "format": RESUME_FORMAT,
        "format_version": RESUME_VERSION,
        "cur_nimg": resume.cur_nimg,
        "batch_idx": resume.batch_idx,
        "cur_tick": resume.cur_tick,
        "seed": resume.seed,
        "augment_p": resume.augment_p,
        "ada": resume.ada,
        "optimizers": optim_json,
        "rng": rng_json,
        "extra": resume.extra,
    }
    return tensors, doc


def _unflatten(tensors: Mapping[str, torch.Tensor], doc: Mapping[str, Any]) -> ResumeState:
    optimizers: dict[str, dict[str, Any]] = {}
    for name, entry in doc["optimizers"].items():
        state: dict[int, dict[str, torch.Tensor]] = {}
        for idx, keys in entry["state_keys"].items():
            state[int(idx)] = {key: tensors[f"opt.{name}.{idx}.{key}"] for key in keys}
        groups = []
        for g in entry["param_groups"]:
            g = dict(g)
            if isinstance(g.get("betas"), list):
                g["betas"] = tuple(g["betas"])
            groups.append(g)
        optimizers[name] = {"state": state, "param_groups": groups}
    rng: dict[str, Any] = {}
    if doc.get("rng"):
        r = doc["rng"]
        rng = {
            "torch_cpu": tensors["rng.torch_cpu"],
            "torch_cuda": [tensors[f"rng.torch_cuda.{i}"] for i in range(int(r["num_cuda"]))],
            "numpy": {"keys": tensors["rng.numpy_keys"], **r["numpy"]},
            "python": r["python"],
        }
    return ResumeState(
        cur_nimg=int(doc["cur_nimg"]),
        batch_idx=int(doc["batch_idx"]),
        cur_tick=int(doc["cur_tick"]),
        seed=int(doc["seed"]),
        augment_p=float(doc["augment_p"]),
        ada=dict(doc.get("ada") or {}),
        pl_mean=float(tensors["loss.pl_mean"].item()),
        optimizers=optimizers,
        rng=rng,
        extra=dict(doc.get("extra") or {}),
    )


# ----------------------------------------------------------------------------------------------------
# Save / load.


def save_snapshot(
    directory: str | os.PathLike[str],
    networks: Mapping[str, torch.nn.Module],    # {"G": G, "D": D, "G_ema": G_ema} (or a subset).
    network_kwargs: Mapping[str, Mapping[str, Any]],  # Constructor kwargs of each network.
    label_schema: Mapping[str, Any] | None,     # The dataset's label schema (names of c), or None.
    training: Mapping[str, Any] | None,         # Free-form metadata for config.json.
    resume: ResumeState | None,                 # None = networks only (no exact resume).
    samples_png: bytes | None = None,           # Encoded sample grid to store beside the weights.
) -> Path:
    """Write a snapshot folder atomically (replacing an existing snapshot of the same name)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.staging-", dir=directory.parent))
    try:
        ckpt_dir = staging / "ckpt"
        save_checkpoint(
            ckpt_dir,
            networks,
            {
                "networks": {name: {"kwargs": dict(network_kwargs[name])} for name in networks},
                "label_schema": dict(label_schema) if label_schema is not None else None,
                "training": dict(training) if training is not None else None,
            },
        )
        if resume is not None:
            tensors, doc = _flatten(resume)
            _write_file(ckpt_dir / RESUME_TENSORS, safetensors.torch.save(tensors, metadata={"format": "pt"}))
            _write_file(ckpt_dir / RESUME_JSON, (json.dumps(doc, indent=1) + "\n").encode())
        if samples_png is not None:
            _write_file(ckpt_dir / SAMPLES_FILE, samples_png)
        if directory.exists():
            if not (directory / CONFIG_FILE).is_file():
                raise CheckpointError(f"refusing to replace {directory}: it is not a snapshot")
            old = staging / "old"
            os.replace(directory, old)
        os.replace(ckpt_dir, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def find_snapshot(path: str | os.PathLike[str]) -> Path:
    """A snapshot folder given itself or a run folder (then its latest snapshot)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"--resume: no such run or snapshot: {path}")
    if is_pack(path):
        return unpack_snapshot(path)
    if (path / CONFIG_FILE).is_file():
        return path
    if path.is_dir():
        snaps = sorted(p for p in path.iterdir() if p.name.startswith(SNAPSHOT_PREFIX) and (p / CONFIG_FILE).is_file())
        if snaps:
            return snaps[-1]
    raise InputError(f"--resume: {path} is neither a snapshot nor a run folder with snapshots")


def load_snapshot(
    path: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> tuple[dict[str, torch.nn.Module], dict[str, Any], ResumeState | None]:
    """(networks {name: module}, checkpoint config, resume state or None) of a snapshot or run folder.

    Networks come back in train mode with requires_grad False, as the training loop expects them.
    """
    snap = find_snapshot(path)
    ckpt = load_checkpoint(snap, names=None, device=device)
    for module in ckpt.networks.values():
        module.train()
    resume = None
    if (snap / RESUME_JSON).is_file() and (snap / RESUME_TENSORS).is_file():
        try:
            doc = json.loads((snap / RESUME_JSON).read_text(encoding="utf-8"))
            tensors = safetensors.torch.load((snap / RESUME_TENSORS).read_bytes())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{snap}: unreadable resume state: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != RESUME_FORMAT:
            raise CheckpointError(f"{snap / RESUME_JSON} is not a tryon resume file")
        if int(doc.get("format_version", 0)) > RESUME_VERSION:
            raise CheckpointError(f"{snap / RESUME_JSON}: format_version {doc['format_version']} is too new")
        try:
            resume = _unflatten(tensors, doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{snap}: incomplete resume state ({exc})") from exc
    return ckpt.networks, ckpt.config, resume
