"""The dataset zip: images + `dataset.json` in NVlabs' layout, plus our schema, report and metadata.

Members (NVlabs' stylegan2-ada-pytorch `ImageFolderDataset` reads the first two kinds and ignores the
rest, so its trainer accepts our zips as they are):

    00000/img00000000.png ...   the images (PNG or JPEG), all res x res RGB, 1000 per folder
    dataset.json                {"labels": [["00000/img00000000.png", [0.0, 1.0, ...]], ...] | null}
    label_schema.json           the names of the label vector (see datasets.labels)
    report.json                 what was kept and skipped, why, and the options used
    metadata.json               per image: its source photo and the transform applied

The zip is written to `<out>.partial` and renamed into place at the end, so an interrupted run never
leaves a zip that looks complete. Entries carry a fixed timestamp, so the same inputs and options
give byte-identical zips.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from tryon.errors import InputError

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
IMAGE_FORMATS = {"png": ".png", "jpg": ".jpg"}


def image_member_name(index: int, suffix: str) -> str:
    """NVlabs' naming: 1000 images per folder."""
    return f"{index // 1000:05d}/img{index:08d}{suffix}"


class DatasetZipWriter:
    """Streams images into the zip in order; `finish` adds the JSON members and publishes the zip."""

    def __init__(self, path: str | os.PathLike[str], *, image_format: str = "png", overwrite: bool = True):
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
        self.path = Path(path)
        if self.path.suffix.lower() != ".zip":
            raise InputError(f"--out must be a .zip file, got {self.path}")
        if self.path.exists() and not overwrite:
            raise InputError(f"{self.path} exists (pass --overwrite to replace it)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.suffix = IMAGE_FORMATS[image_format]
        self._zip: zipfile.ZipFile | None = zipfile.ZipFile(self.partial, "w", allowZip64=True)
        self.count = 0

    def add_image(self, data: bytes) -> str:
        """Append one encoded image; returns its member name."""
        name = image_member_name(self.count, self.suffix)
        self._write(name, data, compress=False)  # PNG / JPEG are compressed already.
        self.count += 1
        return name

    def add_json(self, name: str, obj: Any) -> None:
        text = json.dumps(obj, indent=None, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
        self._write(name, text.encode("utf-8"), compress=True)

    def finish(self) -> Path:
        """Close the zip and move it into place (replacing an older one)."""
        assert self._zip is not None, "finish() called twice"
        self._zip.close()
        self._zip = None
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial zip (on error or Ctrl-C)."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        self.partial.unlink(missing_ok=True)

    def _write(self, name: str, data: bytes, *, compress: bool) -> None:
        assert self._zip is not None, "the writer is closed"
        info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        info.create_system = 3
        self._zip.writestr(info, data)

    def __enter__(self) -> DatasetZipWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._zip is not None:
            self.abort()
