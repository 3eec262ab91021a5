"""Face compositing and try-on: how well the pasted face lines up, how visible its seam is, how well its
colour matches, and how long each step takes — on real try-on photos and on generated models.

Faces pasted: real faces aligned by `align_face` from ../shared/data/face_photos (the compositor does
not care where an aligned face comes from; the shipped 64² face G renders colour blobs that the face
mesh cannot read, so they cannot be scored by landmarks — they are timed and shown, not scored).
Models: every photo of ../shared/data/tryon_examples/{ootd_model,idm_human} (768×1024; those without a
head must be refused), and on-model outfits of the shipped fashion G (64², upscaled to 512², where the
mesh never finds a face and the canonical head position of the pose-normalized frame is used).

Per composite and blend mode (laplacian = ours, poisson, alpha = feathered mask only, paste = naive
hard paste without colour matching):
- landmark error: the face mesh re-run on the composite; mean distance (px, and in eye distances) of
  its eye centres and mouth corners from where the compositor aimed the face's (median and 90th
  percentile over the composites where the mesh finds the face; "found" = the share where it does:
  a face found more than an eye distance from the aimed place counts as not found);
- seam: mean squared luminance gradient on a thin band along the mask's 0.5 contour, divided by the
  same band in the untouched model image ("excess": 1 = as smooth as the photo) and by the face's
  interior ("ratio");
- colour: CIE76 delta E between the mean Lab of the pasted face's inner skin and the model's own face
  there (before = the face as rendered, after = the composite);
- seconds per step (upscale, locate, face landmarks, warp, mask, colour, blend), and for the whole
  `try_on` with the shipped models: projection (N steps), render, outfit generation, composite.

    python benchmarks/bench_tryon.py                    # all photos, 3 faces, 16 generated models
    python benchmarks/bench_tryon.py --quick            # 6 photos, 2 faces, 4 generated models

Prints tables, writes benchmarks/results/bench_tryon.json and three small images
benchmarks/results/tryon_{real,generated,render}.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = REPO.parent / "shared" / "data"
FACES = ("biden.jpg", "obama.jpg", "alex-lacamoire.png")
BLENDS = ("laplacian", "poisson", "alpha", "paste")
OUTFITS = (("tops", "Women"), ("tops", "Men"), ("outerwear", "Women"), ("bottoms", "Men"))


def aligned_faces(names: tuple[str, ...]) -> dict[str, Image.Image]:
    from tryon.face.align import align_face
    from tryon.vision.io import load_image

    return {n: align_face(load_image(DATA / "face_photos" / n), 256)[0].image for n in names}


def model_photos(quick: bool) -> list[Path]:
    files = sorted((DATA / "tryon_examples" / "ootd_model").iterdir()) + sorted(
        (DATA / "tryon_examples" / "idm_human").iterdir()
    )
    files = [f for f in files if f.suffix.lower() in (".jpg", ".jpeg", ".png")]
    return files[::6] if quick else files


def score(result: Any, model: Image.Image) -> dict[str, float]:
    """Landmark error, seam and colour numbers of one CompositeResult (see the module docstring)."""
    import cv2

    from tryon.composite import _to_lab, mesh_keypoints, seam_metrics
    from tryon.face.align import find_faces

    out = np.asarray(result.image)
    ref = np.asarray(model.convert("RGB").resize(result.image.size, Image.Resampling.LANCZOS))
    mask = np.asarray(result.mask, dtype=np.float32) / 255.0
    row: dict[str, float] = {}
    target = result.target_keypoints
    eye_dist = float(np.hypot(*(target[1] - target[0])))
    found = find_faces(result.image)
    if found:
        # The composite's face nearest the aimed eyes (a photo may hold another face).
        best = min(found, key=lambda f: float(np.hypot(*(mesh_keypoints(f[1])[:2].mean(0) - target[:2].mean(0)))))
        kp = mesh_keypoints(best[1])
        err = np.hypot(*(kp[:4] - target[:4]).T)
        found = found if float(np.hypot(*(kp[:2].mean(0) - target[:2].mean(0)))) < eye_dist else []
    if found:  # A face found more than an eye distance away is another face (or a misreading).
        row["landmark_px"] = float(err.mean())
        row["landmark_rel"] = float(err.mean() / eye_dist)
    else:
        row["landmark_px"] = row["landmark_rel"] = float("nan")
    row["found"] = float(bool(found))
    seam = seam_metrics(out, mask, reference=ref)
    row["seam_excess"], row["seam_ratio"] = seam["excess"], seam["ratio"]
    inner = cv2.erode((mask > 0.5).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    if inner.sum() > 50:
        lab_out = _to_lab(out.astype(np.float32) / 255.0)[inner].mean(0)
        lab_ref = _to_lab(ref.astype(np.float32) / 255.0)[inner].mean(0)
        row["delta_e"] = float(np.linalg.norm(lab_out - lab_ref))
    else:
        row["delta_e"] = float("nan")
    return row


def summarise(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for k in keys:
        v = np.array([r[k] for r in rows if k in r], dtype=np.float64)
        v = v[np.isfinite(v)]
        out[k] = (float(np.mean(v)) if k == "found" else float(np.median(v))) if len(v) else float("nan")
        if k == "landmark_px" and len(v):
            out["landmark_px_p90"] = float(np.percentile(v, 90))
    out["n"] = float(len(rows))
    return out


def crop_panel(result: Any, size: int = 192) -> Image.Image:
    x0, y0, x1, y1 = result.metrics["crop"]
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    return result.image.crop(box).resize((size, size), Image.Resampling.LANCZOS)


def labelled(panels: list[tuple[str, Image.Image]], size: int = 192) -> Image.Image:
    sheet = Image.new("RGB", (size * len(panels), size + 14), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate(panels):
        sheet.paste(im.resize((size, size)), (i * size, 14))
        draw.text((i * size + 3, 1), label, fill=(0, 0, 0))
    return sheet


def save_small(image: Image.Image, path: Path) -> None:
    """A 256-colour PNG (a few hundred KB at most): enough to look at, small enough to commit."""
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def bench_real(faces: dict[str, Image.Image], quick: bool) -> tuple[dict[str, Any], list[Image.Image]]:
    from tryon.composite import NoUsableFaceError, composite_face
    from tryon.vision.io import load_image

    rows: dict[str, list[dict[str, Any]]] = {b: [] for b in BLENDS}
    timings: list[dict[str, float]] = []
    refused: list[str] = []
    sheets: list[Image.Image] = []
    for path in model_photos(quick):
        model = load_image(path)
        for fi, (fname, face) in enumerate(faces.items()):
            panels: list[tuple[str, Image.Image]] = []
            try:
                for blend in BLENDS:
                    r = composite_face(face, model, blend=blend)  # type: ignore[arg-type]
                    rows[blend].append({"model": path.name, "face": fname, **score(r, model)})
                    if blend == "laplacian":
                        timings.append(r.timings)
                    if blend in ("paste", "laplacian", "poisson"):
                        panels.append((blend, crop_panel(r)))
            except NoUsableFaceError as exc:
                if fi == 0:
                    refused.append(f"{path.name}: {exc}")
                break
            if path.name in ("model_1.png", "00034_00.jpg", "01861_00.jpg") and fi == 0 and len(sheets) < 2:
                orig = composite_face(face, model, blend="laplacian")
                x0, y0, x1, y1 = orig.metrics["crop"]
                side = max(x1 - x0, y1 - y0)
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                box = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
                sheets.append(labelled([("model", model.crop(box)), ("face", face), *panels]))
        print(f"  {path.name}: {'refused' if refused and refused[-1].startswith(path.name) else 'ok'}", flush=True)
    keys = ("landmark_px", "landmark_rel", "found", "seam_excess", "seam_ratio", "delta_e")
    out = {
        "by_blend": {b: summarise(rows[b], keys) for b in BLENDS},
        "refused": refused,
        "seconds": {k: float(np.median([t[k] for t in timings])) for k in timings[0]} if timings else {},
        "photos": len(model_photos(quick)),
    }
    return out, sheets


def bench_generated(faces: dict[str, Image.Image], quick: bool) -> tuple[dict[str, Any], Image.Image]:
    from tryon.composite import composite_face
    from tryon.fashion import FashionPipeline

    pipe = FashionPipeline.from_checkpoint(None)
    seeds = [0] if quick else [0, 1, 2, 3]
    rows: dict[str, list[dict[str, Any]]] = {b: [] for b in BLENDS}
    timings: list[dict[str, float]] = []
    gen_seconds: list[float] = []
    located: list[str] = []
    panels: list[tuple[str, Image.Image]] = []
    face_items = list(faces.items())
    for ci, (category, gender) in enumerate(OUTFITS):
        t0 = time.perf_counter()
        outs = pipe.generate_outfit(category=category, gender=gender, view="on_model", seeds=seeds, truncation=0.7)
        gen_seconds.append((time.perf_counter() - t0) / len(seeds))
        for oi, outfit in enumerate(outs):
            fname, face = face_items[(ci + oi) % len(face_items)]
            for blend in BLENDS:
                r = composite_face(face, outfit.image, generated=True, blend=blend)  # type: ignore[arg-type]
                located.append(r.located)
                name = f"{category}/{gender}/{outfit.seed}"
                rows[blend].append({"outfit": name, "face": fname, **score(r, outfit.image)})
                if blend == "laplacian":
                    timings.append(r.timings)
                    if oi == 0 and len(panels) < 6:
                        panels += [(f"{category}/{gender}", outfit.image.resize((512, 512))), ("laplacian", r.image)]
    keys = ("landmark_px", "landmark_rel", "found", "seam_excess", "seam_ratio", "delta_e")
    out = {
        "by_blend": {b: summarise(rows[b], keys) for b in BLENDS},
        "located": {k: located.count(k) for k in sorted(set(located))},
        "seconds": {k: float(np.median([t[k] for t in timings])) for k in timings[0]},
        "generate_seconds_per_outfit": float(np.median(gen_seconds)),
        "models": len(rows["laplacian"]),
    }
    return out, labelled(panels, 160)


def bench_pipeline(project_steps: int) -> tuple[dict[str, Any], Image.Image]:
    """The whole try_on with the shipped models: a photo projected, rendered, composited twice."""
    from tryon.pipelines import TryOnPipeline
    from tryon.vision.io import load_image

    pipe = TryOnPipeline(project_steps=project_steps)
    photo = load_image(DATA / "face_photos" / "obama.jpg")
    model = load_image(DATA / "tryon_examples" / "idm_human" / "00035_00.jpg")
    t0 = time.perf_counter()
    first = pipe.try_on(photo, {"category": "tops", "colour": "blue", "gender": "Women", "seed": 1})
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = pipe.try_on(photo, model)
    warm = time.perf_counter() - t0
    out = {
        "project_steps": project_steps,
        "first_call": {k: round(v, 4) for k, v in first.timings.items()} | {"wall": cold},
        "second_call_real_model": {k: round(v, 4) for k, v in second.timings.items()} | {"wall": warm},
        "cached": second.cached,
        "located": [first.composite.located, second.composite.located],
    }
    sheet = labelled(
        [
            ("rendered face", first.face.resize((192, 192), Image.Resampling.NEAREST)),
            ("generated model", crop_panel(first.composite)),
            ("real photo", crop_panel(second.composite)),
        ]
    )
    return out, sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small subset (a smoke run)")
    parser.add_argument("--project-steps", type=int, default=20, help="projection steps in the try_on timing")
    parser.add_argument("--out", default=str(RESULTS / "bench_tryon.json"))
    args = parser.parse_args()
    if not (DATA / "tryon_examples").is_dir():
        print(f"{DATA / 'tryon_examples'} is absent: nothing to benchmark", file=sys.stderr)
        return 1
    import torch

    started = time.perf_counter()
    faces = aligned_faces(FACES[:2] if args.quick else FACES)
    print("real try-on photos:", flush=True)
    real, real_sheets = bench_real(faces, args.quick)
    print("generated models:", flush=True)
    gen, gen_sheet = bench_generated(faces, args.quick)
    print("try_on with the shipped models:", flush=True)
    pipeline, render_sheet = bench_pipeline(args.project_steps)

    RESULTS.mkdir(parents=True, exist_ok=True)
    if real_sheets:
        sheet = Image.new("RGB", (real_sheets[0].width, sum(s.height for s in real_sheets)), (255, 255, 255))
        y = 0
        for s in real_sheets:
            sheet.paste(s, (0, y))
            y += s.height
        save_small(sheet, RESULTS / "tryon_real.png")
    save_small(gen_sheet, RESULTS / "tryon_generated.png")
    save_small(render_sheet, RESULTS / "tryon_render.png")

    report = {
        "benchmark": "bench_tryon",
        "quick": args.quick,
        "faces": list(faces),
        "real_photos": real,
        "generated_models": gen,
        "try_on": pipeline,
        "seconds_total": time.perf_counter() - started,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
        },
    }
    Path(args.out).write_text(json.dumps(report, indent=2))

    cols = ("landmark_px", "landmark_px_p90", "landmark_rel", "found", "seam_excess", "seam_ratio", "delta_e")
    for title, part in (("real photos", real), ("generated models", gen)):
        print(f"\n{title} (medians, found = share; n = composites per blend)")
        print(f"{'blend':<10}" + "".join(f"{c:>16}" for c in (*cols, "n")))
        for blend, s in part["by_blend"].items():
            print(f"{blend:<10}" + "".join(f"{s.get(c, float('nan')):>16.3f}" for c in (*cols, "n")))
        print("seconds per step (laplacian, median): " + ", ".join(f"{k} {v:.3f}" for k, v in part["seconds"].items()))
    print(f"\nrefused photos: {len(real['refused'])} of {real['photos']}; generated located: {gen['located']}")
    print(f"try_on: {json.dumps(pipeline)}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
