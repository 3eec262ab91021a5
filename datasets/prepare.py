"""The three dataset tools as functions (the CLI in datasets.cli is a thin layer over these).

prepare_fashion  catalog photos (+ a label CSV, or class folders) -> pose-normalized fashion zip
prepare_faces    face photos (+ CelebA attributes or a label CSV) -> aligned face zip
prepare_viton    a VITON-HD-style folder (image/, cloth/) -> fashion zip with views from the layout
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datasets.faces import FaceOptions, process_face_item
from datasets.fashion import VIEWS, FashionOptions, process_fashion_item
from datasets.groups import ARTICLE_GROUP_COLUMN, COLOUR_GROUP_COLUMN, GroupMapping, load_groups
from datasets.labels import OTHER, VIEW_COLUMN, VIEW_VALUES
from datasets.pipeline import BuildResult, Item, LabelPlan, Outcome, Processor, build_dataset
from datasets.sources import (
    LabelTable,
    class_folder_table,
    read_celeba_attributes,
    read_label_csv,
    select_columns,
)
from tryon.errors import InputError
from tryon.vision.io import list_images

FASHION_DEFAULT_COLUMNS = ("articleType", "baseColour", "gender")
FASHION_GROUPED_COLUMNS = (ARTICLE_GROUP_COLUMN, COLOUR_GROUP_COLUMN, "gender")


def parse_where(clauses: Sequence[str]) -> dict[str, set[str]]:
    """["masterCategory=Apparel,Footwear", ...] -> {"masterCategory": {"Apparel", "Footwear"}}."""
    out: dict[str, set[str]] = {}
    for clause in clauses:
        name, sep, values = clause.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise InputError(f"bad --where {clause!r}: use COLUMN=VALUE[,VALUE...]")
        out.setdefault(name.strip(), set()).update(v.strip() for v in values.split(",") if v.strip())
    return out


def _collect(
    root: Path,
    table: LabelTable | None,
    *,
    require_row: bool,
    where: Mapping[str, set[str]],
    limit: int | None,
    views: Mapping[str, str] | None = None,
    files: Sequence[Path] | None = None,
) -> tuple[list[Item], list[Outcome], dict[str, dict[str, str]] | None, int]:
    """Items to process, photos skipped up front (no label row), label rows by key, and the number
    of photos left out by `where`."""
    files = list_images(root) if files is None else files
    if not files:
        raise InputError(f"no images found under {root}")
    if where and table is None:
        raise InputError("--where needs a labels file")
    if table is not None:
        unknown = [c for c in where if c not in table.columns]
        if unknown:
            raise InputError(f"--where: no column(s) {unknown} in {table.source}; its columns are {table.columns}")
    items: list[Item] = []
    preskipped: list[Outcome] = []
    rows: dict[str, dict[str, str]] | None = {} if table is not None else None
    excluded = 0
    for path in files:
        key = path.relative_to(root).as_posix()
        row = table.lookup(key) if table is not None else None
        if table is not None and row is None:
            if where:
                excluded += 1
            elif require_row:
                preskipped.append(Outcome.skip(key, "unlabelled", f"no row in {Path(table.source).name}"))
            continue
        if row is not None and any(row.get(c) not in vals for c, vals in where.items()):
            excluded += 1
            continue
        if limit is not None and len(items) + len(preskipped) >= limit:
            break
        if rows is not None and row is not None:
            rows[key] = row
        items.append(Item(key=key, path=str(path.resolve()), view=(views or {}).get(key)))
    return items, preskipped, rows, excluded


def _value_fn(groups: GroupMapping | None) -> Any:
    def value(column: str, row: Mapping[str, str]) -> str:
        if groups is not None and column in groups.derived:
            return groups.value(column, row)
        return row.get(column, OTHER)

    return value


def _run(
    *,
    tool: str,
    items: list[Item],
    preskipped: list[Outcome],
    rows: dict[str, dict[str, str]] | None,
    processor: Processor,
    options: FashionOptions | FaceOptions,
    plan: LabelPlan,
    out: str | os.PathLike[str],
    workers: int,
    progress: bool,
    settings: dict[str, Any],
) -> BuildResult:
    if not items and not preskipped:
        raise InputError("no photos left to process (check --where / --limit and the labels file)")
    return build_dataset(
        items,
        processor,
        options,
        out=out,
        rows=rows,
        plan=plan,
        res=options.res,
        image_format=options.image_format,
        workers=workers,
        tool=tool,
        settings={**options.settings(), **settings},
        preskipped=preskipped,
        progress=progress,
    )


def prepare_fashion(
    images: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    options: FashionOptions,
    labels: str | os.PathLike[str] | None = None,
    id_column: str | None = None,
    columns: Sequence[str] | None = None,
    groups: str | None = None,
    min_count: int = 50,
    where: Sequence[str] = (),
    limit: int | None = None,
    workers: int = 0,
    progress: bool = True,
) -> BuildResult:
    """Catalog photos -> a fashion dataset zip (see datasets.fashion for what happens to each photo).

    images: folder of photos (searched recursively). Without `labels`, class folders
        (`images/<class>/...`) give a column "class"; loose photos get only the view.
    labels: a CSV like styles.csv (an id column + label columns); photos without a row are skipped.
    columns: label columns (default: articleType, baseColour, gender — or with groups,
        articleGroup, colourGroup, gender). The view is always the last column.
    groups: "builtin" or a JSON file: adds derived group columns (see datasets.groups).
    min_count: values with fewer kept images go to "other".
    where: ["COLUMN=VALUE[,VALUE]", ...]: only photos whose labels match (e.g. masterCategory=Apparel).
    limit: only the first N photos (in path order) after `where`.
    workers: worker processes (0 = this process).
    """
    root = Path(images)
    if not root.is_dir():
        raise InputError(f"--images {root}: not a folder")
    files = list_images(root)
    table = (
        read_label_csv(labels, id_column=id_column)
        if labels
        else class_folder_table([p.relative_to(root).as_posix() for p in files])
    )
    mapping = load_groups(groups) if groups else None
    derived = mapping.columns() if mapping else []
    default = FASHION_GROUPED_COLUMNS if mapping else FASHION_DEFAULT_COLUMNS
    chosen = select_columns(table, columns, default, derived=derived)
    if VIEW_COLUMN in chosen:
        raise InputError("'view' is added by the tool; leave it out of --columns")
    items, preskipped, rows, excluded = _collect(
        root, table, require_row=labels is not None, where=parse_where(where), limit=limit, files=files
    )
    plan = LabelPlan(
        columns=[*chosen, VIEW_COLUMN],
        value=_value_fn(mapping),
        fixed_values={VIEW_COLUMN: list(VIEW_VALUES)},
        min_count=min_count,
        view_column=VIEW_COLUMN,
    )
    settings = {
        "images": str(root),
        "labels": str(labels) if labels else None,
        "columns": plan.columns,
        "groups": groups,
        "min_count": min_count,
        "where": list(where),
        "excluded_by_where": excluded,
        "limit": limit,
    }
    return _run(
        tool="tryon dataset fashion",
        items=items,
        preskipped=preskipped,
        rows=rows,
        processor=process_fashion_item,
        options=options,
        plan=plan,
        out=out,
        workers=workers,
        progress=progress,
        settings=settings,
    )


def prepare_faces(
    images: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    options: FaceOptions,
    attributes: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    id_column: str | None = None,
    columns: Sequence[str] | None = None,
    min_count: int = 50,
    where: Sequence[str] = (),
    limit: int | None = None,
    workers: int = 0,
    progress: bool = True,
) -> BuildResult:
    """Face photos -> an aligned face dataset zip (see datasets.faces).

    attributes: CelebA's list_attr_celeba.txt: each attribute becomes a column with values no / yes.
    labels: instead, a CSV (id column + label columns), e.g. faces_lfw/lfw_labels.csv.
    columns: which attributes / label columns (default: all).
    Without attributes or labels the zip has no labels (dataset.json "labels": null).
    With which="all", every face of a photo gets the photo's labels.
    """
    if attributes and labels:
        raise InputError("give --attributes or --labels, not both")
    root = Path(images)
    if not root.is_dir():
        raise InputError(f"--images {root}: not a folder")
    table: LabelTable | None = None
    if attributes:
        table = read_celeba_attributes(attributes)
    elif labels:
        table = read_label_csv(labels, id_column=id_column)
    chosen = select_columns(table, columns, ())
    items, preskipped, rows, excluded = _collect(
        root, table, require_row=table is not None, where=parse_where(where), limit=limit
    )
    plan = LabelPlan(
        columns=chosen,
        value=_value_fn(None),
        fixed_values={c: v for c, v in (table.fixed_values if table else {}).items() if c in chosen},
        min_count=min_count,
    )
    settings = {
        "images": str(root),
        "attributes": str(attributes) if attributes else None,
        "labels": str(labels) if labels else None,
        "columns": chosen,
        "min_count": min_count,
        "where": list(where),
        "excluded_by_where": excluded,
        "limit": limit,
    }
    return _run(
        tool="tryon dataset faces",
        items=items,
        preskipped=preskipped,
        rows=rows,
        processor=process_face_item,
        options=options,
        plan=plan,
        out=out,
        workers=workers,
        progress=progress,
        settings=settings,
    )


def viton_files(root: Path) -> tuple[list[Path], dict[str, str]]:
    """Photos of a VITON-HD-style folder and their views: `image/` (a model wearing the garment:
    on_model) and `cloth/` (the garment alone: flat), at the root or under `train/` and `test/`.
    Other VITON-HD folders (image-parse, openpose, cloth-mask, ...) are ignored."""
    bases = [root] if (root / "image").is_dir() or (root / "cloth").is_dir() else []
    bases += [root / s for s in ("train", "test") if (root / s / "image").is_dir() or (root / s / "cloth").is_dir()]
    if not bases:
        raise InputError(f"{root}: expected image/ and cloth/ folders (or train/ and test/ holding them)")
    files: list[Path] = []
    views: dict[str, str] = {}
    for base in bases:
        for sub, view in (("image", "on_model"), ("cloth", "flat")):
            if (base / sub).is_dir():
                for p in list_images(base / sub, recursive=False):
                    files.append(p)
                    views[p.relative_to(root).as_posix()] = view
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    return files, views


def prepare_viton(
    root: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    options: FashionOptions,
    labels: str | os.PathLike[str] | None = None,
    id_column: str | None = None,
    columns: Sequence[str] | None = None,
    min_count: int = 50,
    limit: int | None = None,
    workers: int = 0,
    progress: bool = True,
) -> BuildResult:
    """A VITON-HD-style folder -> a fashion dataset zip. Model photos (image/) are pose-normalized
    and must show a person (else no_person); garment photos (cloth/) are centred as flats. The view
    comes from the folder, not from detection. `labels` (optional) is a CSV keyed by file name."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise InputError(f"--root {root_path}: not a folder")
    files, views = viton_files(root_path)
    if not files:
        raise InputError(f"no images in {root_path}'s image/ and cloth/ folders")
    table = read_label_csv(labels, id_column=id_column) if labels else None
    chosen = select_columns(table, columns, ())
    items, preskipped, rows, _ = _collect(
        root_path, table, require_row=table is not None, where={}, limit=limit, views=views, files=files
    )
    plan = LabelPlan(
        columns=[*chosen, VIEW_COLUMN],
        value=_value_fn(None),
        fixed_values={VIEW_COLUMN: list(VIEW_VALUES)},
        min_count=min_count,
        view_column=VIEW_COLUMN,
    )
    settings = {
        "root": str(root_path),
        "labels": str(labels) if labels else None,
        "columns": plan.columns,
        "limit": limit,
    }
    return _run(
        tool="tryon dataset viton",
        items=items,
        preskipped=preskipped,
        rows=rows,
        processor=process_fashion_item,
        options=dataclasses.replace(options, views=VIEWS),  # The layout gives the view; keep both.
        plan=plan,
        out=out,
        workers=workers,
        progress=progress,
        settings=settings,
    )
