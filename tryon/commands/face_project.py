"""`tryon project PHOTO --out DIR [--steps N] [--pti]`: a face photo -> a latent of the face generator.

Writes into DIR:
    latent.npz           W+ and noise (and PTI deltas) — `tryon edit DIR/latent.npz ...` reads it
    aligned.png          the aligned face at the model's resolution (what was matched)
    photo.png            the aligned face at the photo's own resolution (up to 512 px): the face a
                         try-on shows (`tryon tryon --face DIR`), edits applied to it
    reconstruction.png   the latent rendered by the face generator
    metrics.json         psnr (dB), ssim, feature_distance, seconds (+ steps, init, ...)
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from tryon.errors import InputError

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "project",
        help="project a face photo into the face generator (latent.npz, reconstruction.png, metrics.json)",
        description=(
            "Find the largest face in PHOTO, align it, and project it into the face generator: the encoder "
            "gives a start, --steps of optimisation refine it, --pti fine-tunes a copy of the generator around "
            "it. Writes latent.npz, aligned.png, reconstruction.png and metrics.json into --out."
        ),
    )
    p.add_argument("photo", metavar="PHOTO", help="a photo with a face (JPEG, PNG, WebP; EXIF orientation applied)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--steps", type=int, default=100,
                   help="optimisation steps after the encoder (default 100; 0 = encoder only)")
    p.add_argument("--pti", action="store_true", help="pivotal tuning: fine-tune a copy of G around the result")
    p.add_argument("--init", choices=["encoder", "w_avg"], default="encoder",
                   help="start from the encoder (default) or from w_avg (NVlabs' recipe, needs ~1000 steps)")
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="face checkpoint folder (default: the shipped tryon/assets/face with its encoder)")
    p.add_argument("--encoder", default=None, metavar="DIR", help="face encoder checkpoint (default: the shipped one)")
    p.add_argument("--vgg16", default=None, metavar="FILE",
                   help="torchvision VGG16 weights (a state dict saved with torch.save) for a VGG-LPIPS-like loss term")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.set_defaults(func=run_project)


def run_project(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tryon.face.align import align_face, photo_res, realign
    from tryon.face.latent import PHOTO_FILE
    from tryon.face.models import load_face_models
    from tryon.face.project import project_face
    from tryon.vision.io import load_image

    photo = Path(args.photo)
    if not photo.is_file():
        raise InputError(f"no such photo: {photo}")
    if args.steps < 0:
        raise InputError(f"--steps must be >= 0, got {args.steps}")
    if args.vgg16 is not None and not Path(args.vgg16).is_file():
        raise InputError(f"no such VGG16 weights file: {args.vgg16}")
    image = load_image(photo)
    faces = align_face(image, 256, which="all")  # Largest first; NoFaceError (an InputError) when none.
    models = load_face_models(args.checkpoint, device=args.device, encoder=args.encoder)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=1000, desc="projecting", unit="‰", leave=False, disable=None)

    def progress(fraction: float, message: str) -> None:
        bar.n = int(fraction * 1000)
        bar.set_postfix_str(message, refresh=True)

    try:
        res = project_face(models, faces[0].image, steps=args.steps, pti=args.pti, progress=progress,
                           init=args.init, vgg=args.vgg16, seed=args.seed)
    finally:
        bar.close()
    res.latent.save(out / "latent.npz")
    res.target.save(out / "aligned.png")
    realign(image, faces[0], photo_res(faces[0])).save(out / PHOTO_FILE)
    res.image.save(out / "reconstruction.png")
    metrics = {**res.metrics, "photo": str(photo), "faces_found": len(faces), "face_score": round(faces[0].score, 4)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    m = res.metrics
    print(f"{out}: psnr {m['psnr']:.2f} dB, ssim {m['ssim']:.3f}, feature distance {m['feature_distance']:.3f}, "
          f"{m['seconds']:.1f} s")
    return 0
