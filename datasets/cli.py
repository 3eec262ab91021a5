"""`tryon dataset fashion | faces | viton | info`: build training zips from photos.

    tryon dataset fashion --images DIR --labels styles.csv --out fashion128.zip --res 128 \\
        [--columns articleType,baseColour,gender | --groups builtin] [--min-count 50] [--workers N]
    tryon dataset faces --images DIR [--attributes list_attr_celeba.txt | --labels CSV] --out faces64.zip --res 64
    tryon dataset viton --root VITON_DIR --out viton128.zip --res 128
    tryon dataset info fashion128.zip

Only argparse is imported here; the tools (mediapipe, numpy, ...) load when a verb runs.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Any

from tryon.errors import InputError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dataset",
        help="build training zips from catalog or face photos",
        description="Build aligned, labelled training zips (NVlabs' dataset format) from photos.",
    )
    verbs = parser.add_subparsers(dest="dataset_command", metavar="VERB")
    parser.set_defaults(func=lambda args: _missing_verb(parser))

    p = verbs.add_parser(
        "fashion",
        help="catalog photos -> pose-normalized on-model and centred flat garment images",
        description=(
            "Catalog photos -> square training images: photos of a person wearing the item (view "
            "on_model, found with mediapipe) are pose-normalized so shoulders and hips land at fixed "
            "places; garment-only photos (view flat) are centred on the garment. Labels come from a "
            "CSV like styles.csv (or class folders); the view is always added."
        ),
    )
    p.add_argument("--images", required=True, type=Path, metavar="DIR", help="folder of photos (searched recursively)")
    p.add_argument(
        "--labels", type=Path, metavar="CSV", help="label CSV (an id column + label columns), e.g. styles.csv"
    )
    _label_args(p, default_columns="articleType,baseColour,gender (with --groups: articleGroup,colourGroup,gender)")
    p.add_argument(
        "--groups",
        metavar="builtin|FILE",
        help="add label group columns: 'builtin' (articleGroup, colourGroup; see datasets/README.md) or a JSON file",
    )
    p.add_argument("--views", default="flat,on_model", help="views to keep (default: flat,on_model)")
    _output_args(p, default_res=128)
    _fashion_args(p)
    p.set_defaults(func=_run_fashion)

    p = verbs.add_parser(
        "faces",
        help="face photos -> FFHQ-style aligned face crops",
        description=(
            "Face photos -> FFHQ-style aligned square crops (mediapipe face mesh: eyes and mouth), the "
            "same alignment the face projection applies to user photos."
        ),
    )
    p.add_argument("--images", required=True, type=Path, metavar="DIR", help="folder of photos (searched recursively)")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--attributes", type=Path, metavar="FILE", help="CelebA list_attr_celeba.txt: attributes become no/yes labels"
    )
    src.add_argument("--labels", type=Path, metavar="CSV", help="label CSV (an id column + label columns)")
    _label_args(p, default_columns="all")
    p.add_argument(
        "--faces",
        choices=("largest", "all"),
        default="largest",
        help="the largest face per photo, or all (default: largest)",
    )
    p.add_argument(
        "--min-coverage",
        type=float,
        default=0.8,
        help="skip faces whose crop is less inside the photo than this (default 0.8)",
    )
    p.add_argument(
        "--max-upscale", type=float, default=2.0, help="skip faces that would be enlarged more than this (default 2)"
    )
    _output_args(p, default_res=64)
    p.set_defaults(func=_run_faces)

    p = verbs.add_parser(
        "viton",
        help="a VITON-HD-style folder (image/, cloth/) -> fashion dataset",
        description=(
            "Import a VITON-HD-style folder: image/ holds model photos (pose-normalized, view on_model), "
            "cloth/ the garments alone (centred, view flat); also under train/ and test/."
        ),
    )
    p.add_argument("--root", required=True, type=Path, metavar="DIR", help="the folder holding image/ and cloth/")
    p.add_argument("--labels", type=Path, metavar="CSV", help="optional label CSV keyed by file name")
    _label_args(p, default_columns="none (only the view)", where=False)
    _output_args(p, default_res=128)
    _fashion_args(p)
    p.set_defaults(func=_run_viton)

    p = verbs.add_parser(
        "info", help="show what a dataset zip holds", description="Show a dataset zip's report and labels."
    )
    p.add_argument("zip", type=Path, help="a dataset zip")
    p.add_argument("--json", action="store_true", help="print the report and label schema as JSON")
    p.set_defaults(func=_run_info)


def _missing_verb(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _label_args(p: argparse.ArgumentParser, *, default_columns: str, where: bool = True) -> None:
    p.add_argument(
        "--id-column", metavar="NAME", help="the label file's id column (default: id, file, ... or the first)"
    )
    p.add_argument("--columns", metavar="A,B,...", help=f"label columns, in order (default: {default_columns})")
    p.add_argument("--min-count", type=int, default=50, help="values with fewer images go to 'other' (default 50)")
    if where:
        p.add_argument(
            "--where",
            action="append",
            default=[],
            metavar="COLUMN=V[,V]",
            help="only photos whose label matches, e.g. masterCategory=Apparel (repeatable: all must match)",
        )
    p.add_argument("--limit", type=int, metavar="N", help="only the first N photos (in path order)")


def _output_args(p: argparse.ArgumentParser, *, default_res: int) -> None:
    p.add_argument("--out", required=True, type=Path, metavar="OUT.zip", help="the dataset zip to write")
    p.add_argument("--res", type=int, default=default_res, help=f"output side in px (default {default_res})")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="image format in the zip (default png)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality for --format jpg (default 95)")
    p.add_argument("--workers", type=int, help="worker processes (default: all cores; 0 = no pool)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.zip if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fashion_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--background",
        default="auto",
        metavar="auto|white|R,G,B",
        help="fill colour outside the photo (default: each photo's border colour)",
    )
    p.add_argument(
        "--whiten-background",
        action="store_true",
        help="on-model: paint everything but the person white (selfie segmentation)",
    )
    p.add_argument(
        "--min-coverage", type=float, default=0.5, help="skip photos covering less of the frame than this (default 0.5)"
    )
    p.add_argument(
        "--min-visibility", type=float, default=0.5, help="smallest pose visibility of shoulders and hips (default 0.5)"
    )
    p.add_argument(
        "--max-upscale", type=float, default=2.0, help="skip photos that would be enlarged more than this (default 2)"
    )
    p.add_argument(
        "--headless",
        choices=("box", "skip"),
        default="box",
        help="on-model shots with no head and no usable pose (waist-to-feet shots of trousers): centre their "
        "bounding box like a flat (box, default) or skip them",
    )


def _columns(text: str | None) -> list[str] | None:
    if text is None:
        return None
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise InputError("--columns is empty")
    return cols


def _background(text: str) -> tuple[int, int, int] | None:
    if text == "auto":
        return None
    if text == "white":
        return (255, 255, 255)
    parts = text.split(",")
    try:
        rgb = tuple(int(v) for v in parts)
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise InputError(f"bad --background {text!r}: use auto, white or R,G,B with values 0-255")
    return (rgb[0], rgb[1], rgb[2])


def _common(args: argparse.Namespace) -> dict[str, Any]:
    from datasets.pipeline import default_workers

    if args.out.exists() and not args.overwrite:
        raise InputError(f"{args.out} exists (pass --overwrite to replace it)")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    workers = default_workers() if args.workers is None else args.workers
    if workers < 0:
        raise InputError(f"--workers must be 0 or more, got {workers}")
    return {"workers": workers, "progress": not args.no_progress, "limit": args.limit}


def _fashion_options(args: argparse.Namespace, views: tuple[str, ...]) -> Any:
    from datasets.fashion import FashionOptions

    return FashionOptions(
        res=args.res,
        image_format=args.format,
        quality=args.quality,
        views=views,
        background=_background(args.background),
        whiten_background=args.whiten_background,
        min_visibility=args.min_visibility,
        min_coverage=args.min_coverage,
        max_upscale=args.max_upscale,
        headless=args.headless,
    )


def _run_fashion(args: argparse.Namespace) -> int:
    from datasets.prepare import prepare_fashion

    common = _common(args)
    views = tuple(v.strip() for v in args.views.split(",") if v.strip())
    result = prepare_fashion(
        args.images,
        out=args.out,
        options=_fashion_options(args, views),
        labels=args.labels,
        id_column=args.id_column,
        columns=_columns(args.columns),
        groups=args.groups,
        min_count=args.min_count,
        where=args.where,
        **common,
    )
    return _print_result(result)


def _run_faces(args: argparse.Namespace) -> int:
    from datasets.faces import FaceOptions
    from datasets.prepare import prepare_faces

    common = _common(args)
    options = FaceOptions(
        res=args.res,
        image_format=args.format,
        quality=args.quality,
        which=args.faces,
        min_coverage=args.min_coverage,
        max_upscale=args.max_upscale,
    )
    result = prepare_faces(
        args.images,
        out=args.out,
        options=options,
        attributes=args.attributes,
        labels=args.labels,
        id_column=args.id_column,
        columns=_columns(args.columns),
        min_count=args.min_count,
        where=args.where,
        **common,
    )
    return _print_result(result)


def _run_viton(args: argparse.Namespace) -> int:
    from datasets.fashion import VIEWS
    from datasets.prepare import prepare_viton

    common = _common(args)
    result = prepare_viton(
        args.root,
        out=args.out,
        options=_fashion_options(args, VIEWS),
        labels=args.labels,
        id_column=args.id_column,
        columns=_columns(args.columns),
        min_count=args.min_count,
        **common,
    )
    return _print_result(result)


def _print_result(result: Any) -> int:
    from datasets.pipeline import format_report

    print(format_report(result.report, result.path, result.seconds))
    if result.report["images"] == 0:
        print("warning: no image was kept; the zip is empty", flush=True)
        return 1
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from datasets.pipeline import format_report

    try:
        with zipfile.ZipFile(args.zip) as zf:
            names = set(zf.namelist())
            report = json.loads(zf.read("report.json")) if "report.json" in names else None
            schema = json.loads(zf.read("label_schema.json")) if "label_schema.json" in names else None
            images = sum(1 for n in names if Path(n).suffix.lower() in (".png", ".jpg", ".jpeg"))
    except FileNotFoundError:
        raise InputError(f"no such file: {args.zip}") from None
    except zipfile.BadZipFile as exc:
        raise InputError(f"{args.zip}: not a zip file ({exc})") from exc
    if args.json:
        print(json.dumps({"report": report, "label_schema": schema, "images": images}, indent=2))
        return 0
    if report is not None:
        print(format_report(report, args.zip))
    else:
        print(f"{args.zip}: {images} images (no report.json: not made by `tryon dataset`)")
    if schema is not None:
        print(f"labels (dim {schema['dim']}):")
        for col in schema["columns"]:
            counts = col.get("counts") or [None] * len(col["values"])
            shown = ", ".join(
                f"{v} ({n})" if n is not None else str(v) for v, n in zip(col["values"], counts, strict=False)
            )
            print(f"  {col['name']} [offset {col['offset']}]: {shown}")
    return 0
