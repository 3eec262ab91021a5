"""`tryon outfit`, `tryon variants` and `tryon transfer`: the fashion pipelines on the command line.

    tryon outfit --category tops --colour blue --gender Men --view on_model --seeds 0-3 --out grid.png
    tryon variants --mode mix --category tops --colour blue --seed 3 --other-colour red --other-seed 9 \\
        --layers coarse,middle,fine --out mix/
    tryon variants --mode interpolate --category tops --seed 1 --other-seed 2 --steps 8 --out path.png
    tryon variants --mode colour --category tops --view flat --seed 5 --colours blue,red,black --out c.png
    tryon transfer shirt.jpg --gender Men --out worn/      # framed.png, flat.png, on_model.png, result.json

--out ending in '/' writes one PNG per image (+ results.json with the labels, seeds and params);
otherwise one grid image. Labels: the friendly fields, or --label NAME=VALUE with the checkpoint's
own names (`tryon labels --checkpoint tryon/assets/fashion`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tryon.errors import InputError

if TYPE_CHECKING:
    from tryon.fashion import FashionPipeline, OutfitResult, OutfitSpec


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", default=None, metavar="DIR", help="fashion checkpoint (default: the shipped one)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "bf16"],
        help="rendering precision: auto = bf16 on CPUs with bf16 instructions, fp32 elsewhere (default auto)",
    )


def _add_label_args(parser: argparse.ArgumentParser, prefix: str = "", what: str = "") -> None:
    for field in ("category", "colour", "gender", "view"):
        parser.add_argument(f"--{prefix}{field}", default=None, help=f"{what}{field} (a value of its label)")
    parser.add_argument(
        f"--{prefix}label",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"{what}label by its schema name; repeatable",
    )


def register_outfit(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "outfit",
        help="generate outfits by category, colour, gender and view",
        description="Generate outfit images with the fashion generator (one per seed).",
    )
    _add_label_args(parser)
    parser.add_argument("--seeds", default="0-3", help="seeds: a range and/or a list, e.g. 0-15 or 1,5,9")
    parser.add_argument("--truncation", type=float, default=0.7, metavar="PSI", help="truncation psi (default 0.7)")
    parser.add_argument("--cols", type=int, default=None, help="grid columns")
    parser.add_argument("--out", required=True, metavar="X", help="grid image file, or a folder ending in '/'")
    _add_model_args(parser)
    parser.set_defaults(func=run_outfit)


def register_variants(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "variants",
        help="garment variants: seeds, truncation, style mixing, interpolation, colour",
        description=(
            "Variants of a garment. mix: the base with the other garment's layer group(s) (coarse = "
            "silhouette, middle, fine = colour / texture); interpolate: a path in W to the other garment; "
            "colour: the same seed under other colours; seeds / truncation: sweeps."
        ),
    )
    parser.add_argument("--mode", required=True, choices=["seeds", "truncation", "mix", "interpolate", "colour"])
    _add_label_args(parser, what="base garment: ")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--truncation", type=float, default=0.7, metavar="PSI", help="base truncation (default 0.7)")
    _add_label_args(parser, prefix="other-", what="other garment (default: the base's): ")
    parser.add_argument("--other-seed", type=int, default=None, help="other garment's seed (default: base seed + 1)")
    parser.add_argument("--seeds", default=None, help="seeds mode: the seeds (default: 4 after the base seed)")
    parser.add_argument("--truncations", default=None, help="truncation mode: psis, e.g. 0,0.5,1")
    parser.add_argument("--layers", default="coarse,middle,fine", help="mix mode: layer groups, comma-separated")
    parser.add_argument("--steps", type=int, default=5, help="interpolate mode: images on the path (default 5)")
    parser.add_argument("--colours", default=None, help="colour mode: colours, comma-separated (default: all)")
    parser.add_argument("--cols", type=int, default=None, help="grid columns")
    parser.add_argument("--out", required=True, metavar="X", help="grid image file, or a folder ending in '/'")
    _add_model_args(parser)
    parser.set_defaults(func=run_variants)


def register_transfer(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "transfer",
        help="put a garment photo on a generated model",
        description=(
            "Frame a garment's product photo like the training flats, project it into the fashion generator "
            "and mix its middle / fine layers into a model of the same category: this garment, worn by a model. "
            "Writes framed.png, flat.png, on_model.png, before.png, result.json and latents.npz to --out."
        ),
    )
    parser.add_argument("photo", help="the garment photo (JPEG, PNG or WebP)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--gender", default=None, help="the model's gender (default: read from the photo)")
    parser.add_argument("--category", default=None, help="override the category read from the photo")
    parser.add_argument("--colour", default=None, help="override the colour read from the photo")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model (default 0)")
    parser.add_argument("--truncation", type=float, default=0.7, metavar="PSI", help="model truncation (default 0.7)")
    parser.add_argument("--steps", type=int, default=100, help="projection steps (default 100)")
    _add_model_args(parser)
    parser.set_defaults(func=run_transfer)


# ----------------------------------------------------------------------------------------------------
# Handlers.


def _pipeline(args: argparse.Namespace) -> FashionPipeline:
    from tryon.commands.generate import _device
    from tryon.fashion import FashionPipeline

    return FashionPipeline.from_checkpoint(args.checkpoint, device=_device(args.device), precision=args.precision)


def _named_labels(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not name or not value:
            raise InputError(f"bad {flag} {item!r}: use NAME=VALUE")
        if name in out:
            raise InputError(f"{flag} {name} is given twice")
        out[name] = value
    return out


def _spec(pipe: FashionPipeline, args: argparse.Namespace, prefix: str, seed: int, truncation: float) -> OutfitSpec:
    get = lambda name: getattr(args, prefix + name)  # noqa: E731
    return pipe.spec(
        category=get("category"),
        colour=get("colour"),
        gender=get("gender"),
        view=get("view"),
        labels=_named_labels(get("label"), f"--{prefix.replace('_', '-')}label"),
        seed=seed,
        truncation=truncation,
    )


def _write(results: list[OutfitResult], out_arg: str, cols: int | None) -> None:
    import numpy as np

    from tryon.commands.generate import _output_target
    from tryon.imaging import make_grid, save_image

    out, is_folder = _output_target(out_arg)
    if cols is not None and cols < 1:
        raise InputError("--cols must be >= 1")
    images = np.stack([np.asarray(r.image) for r in results])
    if is_folder:
        out.mkdir(parents=True, exist_ok=True)
        records = []
        for i, (r, image) in enumerate(zip(results, images, strict=True)):
            name = f"{i:03d}.png" if r.params.get("mode") != "outfit" else f"seed{r.seed:04d}.png"
            save_image(out / name, image)
            records.append({"file": name, "labels": r.labels, "seed": r.seed, "truncation": r.truncation,
                            "params": r.params})
        (out / "results.json").write_text(json.dumps(records, indent=2, default=str) + "\n")
        print(f"wrote {len(results)} images and results.json to {out}/")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        grid = make_grid(images, cols)
        save_image(out, grid)
        print(f"wrote a grid of {len(results)} images ({grid.shape[1]}x{grid.shape[0]} px) to {out}")


def run_outfit(args: argparse.Namespace) -> int:
    from tryon.commands.generate import parse_seeds

    seeds = parse_seeds(args.seeds)
    pipe = _pipeline(args)
    results = pipe.generate_outfit(
        category=args.category,
        colour=args.colour,
        gender=args.gender,
        view=args.view,
        labels=_named_labels(args.label, "--label"),
        seeds=seeds,
        truncation=args.truncation,
    )
    _write(results, args.out, args.cols)
    return 0


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"bad {flag} {text!r}: use numbers separated by commas, e.g. 0,0.5,1") from None


def run_variants(args: argparse.Namespace) -> int:
    from tryon.commands.generate import parse_seeds
    from tryon.fashion import garment_variants

    pipe = _pipeline(args)
    base = _spec(pipe, args, "", args.seed, args.truncation)
    other = None
    if args.mode in ("mix", "interpolate"):
        other_seed = args.other_seed if args.other_seed is not None else (args.seed + 1) % 2**32
        given = any(getattr(args, f"other_{f}") is not None for f in ("category", "colour", "gender", "view"))
        if given or args.other_label:
            other = _spec(pipe, args, "other_", other_seed, args.truncation)
            # Fields not given for the other garment are the base's.
            other = type(other)(labels={**base.labels, **other.labels}, seed=other.seed, truncation=other.truncation)
        else:
            other = type(base)(labels=dict(base.labels), seed=other_seed, truncation=args.truncation)
    results = garment_variants(
        pipe,
        base,
        args.mode,
        seeds=parse_seeds(args.seeds) if args.seeds else None,
        truncations=_floats(args.truncations, "--truncations") if args.truncations else None,
        other=other,
        layers=[g.strip() for g in args.layers.split(",") if g.strip()],
        steps=args.steps,
        colours=[c.strip() for c in args.colours.split(",") if c.strip()] if args.colours else None,
    )
    _write(results, args.out, args.cols)
    return 0


def run_transfer(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from tryon.fashion import garment_transfer
    from tryon.vision.io import ImageLimits, load_image

    photo = load_image(args.photo, limits=ImageLimits(), name=args.photo)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {args.out} is a file: give a folder")
    pipe = _pipeline(args)
    with tqdm(total=100, desc="transfer", unit="%", disable=None) as bar:

        def progress(fraction: float, message: str) -> None:
            bar.set_postfix_str(message[:40])
            bar.update(round(fraction * 100) - bar.n)

        result = garment_transfer(
            pipe,
            photo,
            gender=args.gender,
            category=args.category,
            colour=args.colour,
            seed=args.seed,
            truncation=args.truncation,
            steps=args.steps,
            progress=progress,
        )
    out.mkdir(parents=True, exist_ok=True)
    for name, image in (
        ("framed", result.framed),
        ("flat", result.flat),
        ("on_model", result.on_model),
        ("before", result.base_on_model),
    ):
        image.save(out / f"{name}.png")
    np.savez(out / "latents.npz", flat_ws=result.flat_ws, on_model_ws=result.on_model_ws)
    summary = {
        "labels": result.labels,
        "on_model_labels": result.on_model_labels,
        "estimate": result.estimate,
        "seed": result.seed,
        "truncation": result.truncation,
        "metrics": result.metrics,
        "timings": result.timings,
    }
    (out / "result.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    m = result.metrics
    print(
        f"wrote framed/flat/on_model/before.png, result.json to {out}/: colour distance {m['colour_distance']:.1f} "
        f"(before {m['colour_distance_before']:.1f}), category agreement {m.get('category_agreement')}, "
        f"{result.timings['total_s']:.1f} s"
    )
    return 0
