"""`tryon edit`: edit a projected face (a latent.npz from `tryon project`) and render it.

    tryon edit proj/latent.npz --age +10 --smile 0.5 --out edited.png
    tryon edit proj/ --instruction "a bit older, no glasses" --keep gender --out edited.png --compare
    tryon edit proj/ --edit sefa2=1 --layers coarse --out x.png            # any fitted direction
    tryon edit proj/ --mix other/latent.npz --mix-groups fine --out x.png  # B's colours on A
    tryon edit proj/ --compose other/latent.npz --region eyes --out x.png  # these eyes in the other face
    tryon edit --list                                                      # the directions and ranges

Units and signs: see tryon.face.edits (one unit = a clear change; age counts in tenths, ±15).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tryon.errors import InputError
from tryon.face.instructions import EDIT_NAMES, EDIT_RANGES

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "edit",
        help="edit a projected face (age, smile, pose, glasses, ...) and render it",
        description=(
            "Apply attribute edits to a face latent (latent.npz from `tryon project`, or its folder) and write "
            "the rendered face. Edits stack; each has a strength (one unit = a clear change, age in tenths) and "
            "a default layer range. --instruction takes plain words (\"older, smiling, no glasses\")."
        ),
    )
    parser.add_argument("latent", nargs="?", metavar="LATENT", help="latent.npz, or the folder `tryon project` wrote")
    for name in EDIT_NAMES:
        lo, hi = EDIT_RANGES[name]
        parser.add_argument(f"--{name.replace('_', '-')}", dest=f"edit_{name}", type=float, metavar="S",
                            help=f"{name} strength in [{lo:g}, {hi:g}]")
    parser.add_argument("--edit", action="append", default=[], metavar="NAME=S",
                        help="any fitted direction by name (e.g. sefa2=1, pca0=-0.5); repeatable")
    parser.add_argument("--instruction", metavar="TEXT", help='e.g. "a bit older, smiling, no glasses"')
    parser.add_argument("--keep", action="append", default=[], metavar="NAME",
                        help="attribute to keep fixed while editing (e.g. gender, or a CelebA head like Male); "
                             "repeatable or comma-separated")
    parser.add_argument("--layers", action="append", default=[], metavar="[NAME=]GROUP",
                        help="layer range for all edits (coarse, middle, fine, all, coarse+middle, or START:STOP) "
                             "or for one (smile=middle); repeatable")
    parser.add_argument("--mix", metavar="LATENT_B", help="first take some layer groups from this face (style mixing)")
    parser.add_argument("--mix-groups", default="fine", metavar="GROUPS",
                        help="groups to take from --mix: coarse, middle, fine, comma-separated (default fine)")
    parser.add_argument("--compose", metavar="LATENT_B",
                        help="first put --region of LATENT into this face B (masked projection; slower)")
    parser.add_argument("--region", choices=["eyes", "mouth", "nose", "hair"], help="region for --compose")
    parser.add_argument("--steps", type=int, default=100, help="optimisation steps of --compose (default 100)")
    parser.add_argument("--out", metavar="IMAGE", help="where to write the edited face (.png, .jpg or .webp)")
    parser.add_argument("--size", type=int, metavar="PX", help="resize the output to PX × PX (default: the model's)")
    parser.add_argument("--compare", action="store_true", help="write the unedited face beside the edited one")
    parser.add_argument("--save-latent", metavar="NPZ", help="also write the edited latent")
    parser.add_argument("--checkpoint", metavar="DIR", help="face checkpoint folder (default: tryon/assets/face)")
    parser.add_argument("--directions", metavar="DIR", help="directions folder (default: the shipped ones)")
    parser.add_argument("--list", action="store_true", help="list the directions, their ranges and units, and exit")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(func=run_edit)


def parse_assignments(items: list[str], what: str) -> dict[str, str]:
    """["a=1", "b=2"] -> {"a": "1", "b": "2"} (InputError for an item without '=')."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"{what} takes NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def parse_layers(items: list[str]) -> Any:
    """--layers values -> None, one LayerSpec for all, or {name: LayerSpec}."""
    def spec(text: str) -> Any:
        if ":" in text:
            start, _, stop = text.partition(":")
            try:
                return (int(start), int(stop))
            except ValueError:
                raise InputError(f"--layers START:STOP takes integers, got {text!r}") from None
        return text

    if not items:
        return None
    everyone = [i for i in items if "=" not in i]
    named = parse_assignments([i for i in items if "=" in i], "--layers")
    if everyone and named:
        raise InputError("--layers takes either one range for all edits or NAME=GROUP per edit, not both")
    if len(everyone) > 1:
        raise InputError(f"--layers for all edits was given {len(everyone)} times")
    return spec(everyone[0]) if everyone else {n: spec(v) for n, v in named.items()}


def run_edit(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from tryon.face.edits import edit_latent, face_directions
    from tryon.face.latent import FaceLatent
    from tryon.face.models import load_face_models, render_face

    models = load_face_models(args.checkpoint, device=args.device, encoder=False, classifier=False)
    directions = face_directions(models, args.directions)
    if args.list:
        print(f"{'name':<11} {'range':>13}  {'layers':<13} description")
        from tryon.face.directions import describe_layers

        for name, d in directions.directions.items():
            print(f"{name:<11} [{d.range[0]:g}, {d.range[1]:g}]".ljust(26)
                  + f"  {describe_layers(d.layers, directions.num_ws):<13} {d.description}")
        return 0
    if not args.latent:
        raise InputError("give the face latent (latent.npz or its folder), or --list")
    if not args.out:
        raise InputError("--out IMAGE is required")
    out = Path(args.out)
    if out.suffix.lower() not in _IMAGE_SUFFIXES:
        raise InputError(f"--out must end in {', '.join(_IMAGE_SUFFIXES)}, got {out.name!r}")
    if args.size is not None and not 8 <= args.size <= 4096:
        raise InputError(f"--size must be between 8 and 4096, got {args.size}")

    strengths: dict[str, float] = {}
    for name in EDIT_NAMES:
        value = getattr(args, f"edit_{name}")
        if value is not None:
            strengths[name] = value
    for name, value in parse_assignments(args.edit, "--edit").items():
        try:
            strengths[name] = float(value)
        except ValueError:
            raise InputError(f"--edit {name}= takes a number, got {value!r}") from None
    keep = [k.strip() for item in args.keep for k in item.split(",") if k.strip()]
    layers = parse_layers(args.layers)

    latent = FaceLatent.load(args.latent)
    original = latent
    if args.compose:
        if not args.region:
            raise InputError("--compose needs --region (eyes, mouth, nose or hair)")
        from tryon.face.mixing import compose_faces

        def report(fraction: float, message: str) -> None:
            if sys.stderr.isatty():
                print(f"\r{message}", end="", file=sys.stderr, flush=True)

        result = compose_faces(models, latent, FaceLatent.load(args.compose), args.region, steps=args.steps,
                               progress=report)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        latent = result.latent
        print(f"composed {args.region}: PSNR inside {result.metrics['psnr_inside']:.2f} dB, "
              f"outside {result.metrics['psnr_outside']:.2f} dB in {result.metrics['seconds']:.1f} s")
    elif args.region:
        raise InputError("--region goes with --compose")
    if args.mix:
        from tryon.face.mixing import mix_styles

        groups = [g.strip() for g in args.mix_groups.split(",") if g.strip()]
        latent = mix_styles(latent, FaceLatent.load(args.mix), groups)
    if strengths or args.instruction:
        latent = edit_latent(models, latent, strengths, args.instruction, keep=keep, layers=layers,
                             directions=directions)
    elif keep or layers:
        raise InputError("--keep and --layers go with edits (--age, --edit, --instruction ...)")

    image = render_face(models, latent)
    if args.compare:
        before = render_face(models, original)
        both = np.concatenate([np.asarray(before), np.asarray(image)], axis=1)
        image = Image.fromarray(both)
    if args.size:
        image = image.resize((args.size * image.width // image.height, args.size), Image.Resampling.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    if args.save_latent:
        latent.save(args.save_latent)
    applied = latent.meta.get("edits", [{}])[-1].get("strengths", {}) if (strengths or args.instruction) else {}
    print(f"wrote {out}" + (f" ({', '.join(f'{k} {v:+g}' for k, v in applied.items())})" if applied else ""))
    return 0
