"""`tryon tryon`: put a face onto a model — a generated outfit, an outfit image, or a real photo.

    tryon tryon --face selfie.jpg --category tops --colour blue --gender Women --seed 3 --out result.png
    tryon tryon --face projection/ --outfit outfit.png --age 10 --smile 0.5 --out result.png
    tryon tryon --face selfie.jpg --model-image model.jpg --instruction "older, smiling" --out result.png

--face is a photo (aligned and projected here, `--steps` optimisation steps) or a folder (or
latent.npz) written by `tryon project`. The face shown is the photo itself, aligned at its own
resolution (up to 512 px; a folder's photo.png), with the edits applied as the face generator's
change; a bare latent without photo.png shows the generator's 64² face. The model is one of:
--outfit (an on-model image made by the fashion generator, e.g. `tryon generate … --label
view=on_model --out dir/`), --model-image (a photo of a real person), or labels
(--category/--colour/--gender/--label, --seed, --truncation) to generate one. Edits: --age,
--smile, --gender-edit, --glasses, --pose, or any --edit NAME=VALUE, and/or --instruction words.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from tryon.errors import InputError

log = logging.getLogger(__name__)

# Shortcut flags for the most used edits (any other: --edit NAME=VALUE). Kept here rather than read
# from tryon.face so that `tryon --help` does not import torch.
EDIT_FLAGS = {"age": "age", "smile": "smile", "gender_edit": "gender", "glasses": "glasses", "pose": "pose"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tryon",
        help="put a face (photo or projection) onto a generated outfit or a model photo",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--face", required=True, metavar="PHOTO|DIR", help="a face photo, or a `tryon project` folder")
    model = parser.add_argument_group("the model (one of)")
    model.add_argument("--outfit", metavar="PNG", help="a generated on-model outfit image (pose-normalized)")
    model.add_argument("--model-image", metavar="PHOTO", help="a photo of a real model (its face is replaced)")
    model.add_argument("--category", help="generate an outfit: category (e.g. tops)")
    model.add_argument("--colour", "--color", dest="colour", help="generate an outfit: colour (e.g. blue)")
    model.add_argument("--gender", help="generate an outfit: gender (e.g. Women)")
    model.add_argument("--label", action="append", default=[], metavar="NAME=VALUE", help="any schema label")
    model.add_argument("--seed", type=int, default=0, help="outfit seed (default 0)")
    model.add_argument("--truncation", type=float, default=0.7, metavar="PSI", help="outfit truncation (default 0.7)")
    edits = parser.add_argument_group("face edits")
    edits.add_argument("--age", type=float, help="older (+) / younger (-), in years-ish")
    edits.add_argument("--smile", type=float, help="smile strength, about -1..1")
    edits.add_argument("--gender-edit", type=float, metavar="S", help="the face's gender direction, about -1..1")
    edits.add_argument("--glasses", type=float, help="glasses, about -1..1")
    edits.add_argument("--pose", type=float, help="head turn, about -1..1")
    edits.add_argument("--edit", action="append", default=[], metavar="NAME=VALUE", help="any edit; repeatable")
    edits.add_argument("--instruction", metavar="TEXT", help='words, e.g. "older, smiling, no glasses"')
    parser.add_argument("--out", required=True, metavar="PNG", help="the try-on image")
    parser.add_argument("--save-face", metavar="PNG", help="also write the face pasted (the edited aligned photo)")
    parser.add_argument("--steps", type=int, default=50, help="projection steps for a face photo (default 50)")
    parser.add_argument(
        "--blend", choices=["laplacian", "poisson", "alpha", "paste"], default="laplacian", help="seam blending"
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(func=run_tryon)


def parse_pairs(pairs: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"bad {flag} {pair!r}: use NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def edit_strengths(args: argparse.Namespace) -> dict[str, float]:
    """The edits of the command line: shortcut flags, then --edit pairs."""
    strengths = {name: float(v) for flag, name in EDIT_FLAGS.items() if (v := getattr(args, flag)) is not None}
    for name, value in parse_pairs(args.edit, "--edit").items():
        try:
            strengths[name] = float(value)
        except ValueError:
            raise InputError(f"bad --edit {name}={value}: the strength must be a number") from None
    return strengths


def outfit_argument(args: argparse.Namespace) -> tuple[Any, bool | None]:
    """(what try_on takes as the outfit, generated) from --outfit / --model-image / labels."""
    labels = parse_pairs(args.label, "--label")
    by_labels = any(v is not None for v in (args.category, args.colour, args.gender)) or bool(labels)
    chosen = [name for name, given in (("--outfit", args.outfit), ("--model-image", args.model_image)) if given]
    if by_labels:
        chosen.append("labels (--category/--colour/--gender/--label)")
    if len(chosen) != 1:
        raise InputError(
            "give the model one way: --outfit PNG, --model-image PHOTO, or labels such as --category tops"
            + (f" (got {', '.join(chosen)})" if chosen else "")
        )
    from tryon.vision.io import load_image

    if args.outfit:
        return load_image(Path(args.outfit)), True
    if args.model_image:
        return load_image(Path(args.model_image)), False
    spec: dict[str, Any] = {"seed": args.seed, "truncation": args.truncation}
    for field in ("category", "colour", "gender"):
        if getattr(args, field) is not None:
            spec[field] = getattr(args, field)
    if labels:
        spec["labels"] = labels
    return spec, None


def run_tryon(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tryon.pipelines import TryOnPipeline

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise InputError(f"--out {out} must end in .png, .jpg or .webp")
    if not out.parent.is_dir():
        raise InputError(f"--out: the folder {out.parent} does not exist")
    face_path = Path(args.face)
    if not face_path.exists():
        raise InputError(f"--face {face_path} does not exist")
    strengths = edit_strengths(args)
    outfit, generated = outfit_argument(args)
    pipe = TryOnPipeline(device=args.device, project_steps=args.steps)

    with tqdm(total=100, desc="try-on", unit="%", leave=False) as bar:

        def progress(fraction: float, message: str) -> None:
            bar.set_postfix_str(message[:40])
            bar.update(max(0, round(fraction * 100) - bar.n))

        result = pipe.try_on(
            face_path,
            outfit,
            strengths,
            instruction=args.instruction,
            generated=generated,
            progress=progress,
            blend=args.blend,
        )
    result.image.save(out)
    if args.save_face:
        result.face.save(args.save_face)
    for note in result.notes:
        print(f"tryon tryon: note: {note}", file=sys.stderr)
    summary = {
        "out": str(out),
        "size": list(result.image.size),
        "located": result.composite.located,
        "face": "photo" if result.photo is not None else "generator",
        "edits": result.edits,
        "seconds": {k: round(v, 3) for k, v in result.timings.items()},
    }
    print(json.dumps(summary))
    return 0
