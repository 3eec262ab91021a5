"""Where photos and their labels come from: folders, label CSVs, CelebA attribute lists.

A photo is matched to its label row by the row's id, compared with (in this order) the photo's path
relative to the image folder, that path without its suffix, the file name, and the file name without
its suffix. So `styles.csv` ids (`10001` for `images/10001.jpg`) and LFW's `file` column
(`AJ_Cook/AJ_Cook_0001.jpg`) both work.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from datasets.labels import normalize_value
from tryon.errors import InputError

ID_COLUMN_CANDIDATES = ("id", "file", "filename", "file_name", "image", "image_id", "path", "name")


@dataclasses.dataclass
class LabelTable:
    """Label rows keyed by id: {id: {column: value}}."""

    source: str                            # Where the rows came from (for messages).
    columns: list[str]                     # Label columns, in file order (the id column excluded).
    rows: dict[str, dict[str, str]]        # {id: {column: value}}.
    fixed_values: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # Columns with fixed values.
    _index: dict[str, str] | None = None

    def lookup(self, relpath: str) -> dict[str, str] | None:
        """The row of the photo at `relpath` (relative to the image folder, '/'-separated), or None."""
        if self._index is None:
            self._index = {}
            for key in self.rows:
                for form in _key_forms(key):
                    self._index.setdefault(form, key)
        for form in _key_forms(relpath):
            found = self._index.get(form)
            if found is not None:
                return self.rows[found]
        return None


def _key_forms(path: str) -> list[str]:
    p = PurePosixPath(path.replace("\\", "/").strip())
    return [str(p), str(p.with_suffix("")), p.name, p.stem]


def read_label_csv(path: str | os.PathLike[str], *, id_column: str | None = None) -> LabelTable:
    """A CSV with a header row: one id column (see ID_COLUMN_CANDIDATES, else the first column) and
    label columns. Read as UTF-8 with undecodable bytes replaced; missing cells become "other"."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(f"labels file not found: {path}") from None
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        raise InputError(f"{path}: the labels file is empty") from None
    if len(header) < 2:
        raise InputError(f"{path}: expected a CSV header with an id column and at least one label column")
    if id_column is None:
        lowered = [h.casefold() for h in header]
        id_column = next((header[lowered.index(c)] for c in ID_COLUMN_CANDIDATES if c in lowered), header[0])
    if id_column not in header:
        raise InputError(f"{path}: no column {id_column!r}; the columns are {header}")
    id_index = header.index(id_column)
    columns = [h for h in header if h != id_column]
    rows: dict[str, dict[str, str]] = {}
    for lineno, record in enumerate(reader, start=2):
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) < len(header):
            record = record + [""] * (len(header) - len(record))
        elif len(record) > len(header):
            # A stray comma in the last column (e.g. a product name): keep the extra text in it.
            record = [*record[: len(header) - 1], ",".join(record[len(header) - 1 :])]
        key = record[id_index].strip()
        if not key:
            raise InputError(f"{path}:{lineno}: empty {id_column!r}")
        rows[key] = {h: normalize_value(v) for h, v in zip(header, record, strict=True) if h != id_column}
    if not rows:
        raise InputError(f"{path}: no label rows")
    return LabelTable(source=str(path), columns=columns, rows=rows)


def read_celeba_attributes(path: str | os.PathLike[str]) -> LabelTable:
    """CelebA's `list_attr_celeba.txt`: a count line, a line of attribute names, then
    `<file> <+1|-1> ...` rows. Each attribute becomes a column with the fixed values ["no", "yes"]."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise InputError(f"attributes file not found: {path}") from None
    if len(lines) < 3:
        raise InputError(f"{path}: not a CelebA attribute list (expected a count line, a names line, rows)")
    names = lines[1].split()
    if not names:
        raise InputError(f"{path}: line 2 should list the attribute names")
    rows: dict[str, dict[str, str]] = {}
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise InputError(f"{path}:{lineno}: expected a file name and {len(names)} values, got {len(parts) - 1}")
        try:
            values = [int(v) for v in parts[1:]]
        except ValueError:
            raise InputError(f"{path}:{lineno}: attribute values must be 1 or -1") from None
        if any(v not in (1, -1, 0) for v in values):
            raise InputError(f"{path}:{lineno}: attribute values must be 1 or -1")
        rows[parts[0]] = {n: ("yes" if v == 1 else "no") for n, v in zip(names, values, strict=True)}
    return LabelTable(source=str(path), columns=names, rows=rows, fixed_values={n: ["no", "yes"] for n in names})


def class_folder_table(relpaths: Sequence[str], *, column: str = "class") -> LabelTable | None:
    """Labels from class folders (`root/<class>/<photo>`): {relpath: {column: <class>}}; None when
    the photos are not in class folders (some lie directly in the root)."""
    rows = {}
    for rel in relpaths:
        parts = PurePosixPath(rel).parts
        if len(parts) < 2:
            return None
        rows[rel] = {column: parts[0]}
    if not rows:
        return None
    return LabelTable(source="class folders", columns=[column], rows=rows)


def select_columns(
    table: LabelTable | None,
    requested: Sequence[str] | None,
    default: Sequence[str],
    *,
    derived: Sequence[str] = (),
) -> list[str]:
    """The label columns to use: `requested` (checked), else those of `default` that exist, else all
    of the table's columns. `derived` columns (label groups) exist when the table does."""
    if table is None:
        if requested:
            raise InputError(f"--columns {','.join(requested)} needs a labels file (--labels / --attributes)")
        return []
    available = list(table.columns) + [d for d in derived if d not in table.columns]
    if requested:
        missing = [c for c in requested if c not in available]
        if missing:
            raise InputError(f"no label column(s) {missing} in {table.source}; its columns are {available}")
        return list(requested)
    chosen = [c for c in default if c in available]
    return chosen or list(table.columns)
