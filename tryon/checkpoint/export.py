"""Export of a training snapshot as a shippable checkpoint: the chosen networks, the training
metadata (with a campaign's kimg offset), the sample grid and the model card of the folder replaced."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from tryon.checkpoint.format import CONFIG_FILE, load_checkpoint, write_folder_atomically
from tryon.errors import CheckpointError, InputError

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
    write_folder_atomically(directory, files, overwrite=overwrite)
    return directory
