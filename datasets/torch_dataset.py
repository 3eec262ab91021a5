"""A torch Dataset over a dataset zip (ours or NVlabs dataset_tool's), for the trainer.

Semantics follow NVlabs' `training.dataset.ImageFolderDataset`: images are the members with an image
suffix, sorted by name; labels come from `dataset.json`; `xflip` doubles the length (the second half
is mirrored); `max_size` keeps a fixed random subset. On top of that it reads our
`label_schema.json`, so a label vector can be turned back into names.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from datasets.labels import decode_labels, validate_schema
from tryon.errors import InputError

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm", ".tif", ".tiff"})


class ImageZipDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Images and label vectors from a dataset zip.

    `dataset[i]` -> (image uint8 tensor [C, H, W], label float32 tensor [label_dim]).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        xflip: bool = False,            # Add a mirrored copy of every image (doubles the length).
        max_size: int | None = None,    # Keep at most this many images (a fixed random subset); None = all.
        use_labels: bool = True,        # Return the label vectors; False = empty labels (label_dim 0).
        random_seed: int = 0,           # Seed of the max_size subset.
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"no such dataset: {self.path}")
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        try:
            names = self._get_zip().namelist()
        except zipfile.BadZipFile as exc:
            raise InputError(f"{self.path}: not a zip file ({exc})") from exc
        self._image_fnames = sorted(n for n in names if Path(n).suffix.lower() in _IMAGE_SUFFIXES)
        if not self._image_fnames:
            raise InputError(f"{self.path}: no images in the zip")
        self._schema = self._read_schema(names)
        self._raw_labels = self._read_labels(names) if use_labels else None
        self._use_labels = use_labels

        raw_idx = np.arange(len(self._image_fnames), dtype=np.int64)
        if max_size is not None and raw_idx.size > max_size:
            np.random.RandomState(random_seed).shuffle(raw_idx)
            raw_idx = np.sort(raw_idx[:max_size])
        flip = np.zeros(raw_idx.size, dtype=np.uint8)
        if xflip:
            raw_idx = np.tile(raw_idx, 2)
            flip = np.concatenate([flip, np.ones_like(flip)])
        self._raw_idx = raw_idx
        self._xflip = flip

        first = self._load_raw_image(0)
        self._image_shape = list(first.shape)
        if self._image_shape[1] != self._image_shape[2]:
            _c, h, w = self._image_shape
            raise InputError(f"{self.path}: images must be square, the first is {w}x{h}")

    # ------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._raw_idx.size)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self._load_raw_image(int(self._raw_idx[idx]))
        if list(image.shape) != self._image_shape:
            raise InputError(
                f"{self.path}: {self._image_fnames[int(self._raw_idx[idx])]} is {list(image.shape)}, "
                f"the dataset's images are {self._image_shape} (CHW)"
            )
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(image)), self.get_label(idx)

    def get_label(self, idx: int) -> torch.Tensor:
        """Label vector float32 [label_dim] of item `idx` (empty when there are no labels)."""
        if self._raw_labels is None:
            return torch.zeros([0], dtype=torch.float32)
        return torch.from_numpy(self._raw_labels[int(self._raw_idx[idx])].copy())

    def label_names(self, idx: int) -> dict[str, str | None]:
        """{column: value} of item `idx`, e.g. {"articleType": "Tshirts", ..., "view": "on_model"}.
        Needs the label schema (datasets made by `tryon dataset`)."""
        if self._schema is None:
            raise InputError(f"{self.path} has no label_schema.json: its labels have no names")
        if self._raw_labels is None:
            raise InputError("this dataset was opened with use_labels=False")
        return decode_labels(self._schema, self._raw_labels[int(self._raw_idx[idx])])

    def image_name(self, idx: int) -> str:
        """Zip member name of item `idx`."""
        return self._image_fnames[int(self._raw_idx[idx])]

    def is_flipped(self, idx: int) -> bool:
        return bool(self._xflip[idx])

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def image_shape(self) -> list[int]:
        """[C, H, W]."""
        return list(self._image_shape)

    @property
    def num_channels(self) -> int:
        return self._image_shape[0]

    @property
    def resolution(self) -> int:
        return self._image_shape[1]

    @property
    def label_dim(self) -> int:
        return 0 if self._raw_labels is None else int(self._raw_labels.shape[1])

    @property
    def has_labels(self) -> bool:
        return self.label_dim > 0

    @property
    def label_schema(self) -> dict[str, Any] | None:
        """The parsed label_schema.json (see datasets.labels), or None."""
        return self._schema

    # ------------------------------------------------------------------------------------------------

    def _get_zip(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():  # DataLoader workers open their own.
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        name = self._image_fnames[raw_idx]
        with self._get_zip().open(name) as f:
            data = f.read()
        try:
            with Image.open(io.BytesIO(data)) as f:
                im = f if f.mode in ("RGB", "L") else f.convert("RGB")
                a = np.array(im)
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: member {name} is not a readable image ({exc})") from exc
        if a.ndim == 2:
            a = a[:, :, None]
        return a.transpose(2, 0, 1)  # HWC -> CHW

    def _read_schema(self, names: list[str]) -> dict[str, Any] | None:
        if "label_schema.json" not in names:
            return None
        with self._get_zip().open("label_schema.json") as f:
            try:
                return validate_schema(json.load(f))
            except json.JSONDecodeError as exc:
                raise InputError(f"{self.path}: label_schema.json is not valid JSON ({exc})") from exc

    def _read_labels(self, names: list[str]) -> np.ndarray | None:
        if "dataset.json" not in names:
            return None
        with self._get_zip().open("dataset.json") as f:
            try:
                labels = json.load(f).get("labels")
            except (json.JSONDecodeError, AttributeError) as exc:
                raise InputError(f"{self.path}: dataset.json is not a JSON object ({exc})") from exc
        if labels is None:
            return None
        table = dict(labels)
        missing = [n for n in self._image_fnames if n.replace("\\", "/") not in table]
        if missing:
            raise InputError(f"{self.path}: dataset.json has no label for {len(missing)} images (e.g. {missing[0]})")
        raw = np.array([table[n.replace("\\", "/")] for n in self._image_fnames])
        if raw.ndim == 1:  # NVlabs also allows class indices: one-hot them.
            ints = raw.astype(np.int64)
            onehot = np.zeros([ints.size, int(ints.max()) + 1], dtype=np.float32)
            onehot[np.arange(ints.size), ints] = 1
            raw = onehot
        raw = raw.astype(np.float32)
        if self._schema is not None and raw.shape[1] != int(self._schema["dim"]):
            dim = self._schema["dim"]
            raise InputError(f"{self.path}: labels have {raw.shape[1]} entries, label_schema.json says {dim}")
        return raw

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_zip"] = None  # A zip handle does not pickle; each process reopens it.
        state["_zip_pid"] = None
        return state

    def __del__(self) -> None:
        zf = getattr(self, "_zip", None)
        if zf is not None:
            with contextlib.suppress(Exception):  # At interpreter shutdown anything may be gone.
                zf.close()

    def __repr__(self) -> str:
        return (
            f"ImageZipDataset({str(self.path)!r}, n={len(self)}, shape={self._image_shape}, "
            f"label_dim={self.label_dim}, xflip={bool(self._xflip.any())})"
        )
