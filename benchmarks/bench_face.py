"""Face benchmarks (issue 3), one function per section; each section fills its key of the JSON.

projection: reconstruction of real photos (LFW + face_photos), aligned by `tryon.face.align`, by
    - encoder alone, encoder + 25 / 50 / 100 optimisation steps (W+ and noise, `project_face`),
    - NVlabs' projector recipe: from w_avg, in W, 1000 steps (on fewer photos: it is slow).
    PSNR (dB), SSIM, feature distance (face_features classifier; 0 = same, ~1 = two random real
    faces) and seconds per photo, and the time ratio of encoder + <=100 steps to the 1000-step run.

    python benchmarks/bench_face.py                         # every section
    python benchmarks/bench_face.py --sections projection --lfw 12 --baseline-photos 3

edits: edit quality per direction (benchmarks/bench_face_edits.py): change of the target attribute
    per step vs mean |change| of the other attributes (attribute classifier), identity drift, yaw.

Prints a table per section and writes benchmarks/results/bench_face.json (sections not run are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
sys.path.insert(0, str(REPO_ROOT))

from tryon.face.models import FaceModels, load_face_models  # noqa: E402
from tryon.face.project import project_face  # noqa: E402

# face_photos with one clear face (the others are partial faces, two people, or near-duplicates).
FACE_PHOTOS = ("obama.jpg", "biden.jpg", "alex-lacamoire.png", "lin-manuel-miranda.png")


def lfw_sample(count: int) -> list[Path]:
    """`count` LFW photos spread over the identities (deterministic: every k-th of the sorted list)."""
    root = SHARED_DATA / "faces_lfw" / "images"
    if not root.is_dir():
        return []
    people = sorted(p for p in root.iterdir() if p.is_dir())
    step = max(1, len(people) // max(count, 1))
    out = []
    for person in people[::step][:count]:
        first = sorted(person.glob("*.jpg"))[:1]
        out += first
    return out


def align_photos(paths: list[Path]) -> tuple[list[tuple[str, Any]], list[str]]:
    from tryon.errors import InputError
    from tryon.face.align import align_face
    from tryon.vision.io import load_image

    aligned, skipped = [], []
    for p in paths:
        try:
            aligned.append((f"{p.parent.name}/{p.name}", align_face(load_image(p), 256)[0].image))
        except InputError as exc:
            skipped.append(f"{p.name}: {exc}")
    return aligned, skipped


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("psnr", "ssim", "feature_distance", "seconds")
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys} | {"photos": len(rows)}


def bench_projection(models: FaceModels, args: argparse.Namespace) -> dict[str, Any]:
    photos = lfw_sample(args.lfw) + [SHARED_DATA / "face_photos" / n for n in FACE_PHOTOS[: args.face_photos]]
    photos = [p for p in photos if p.is_file()]
    if not photos:
        return {"skipped": f"no photos under {SHARED_DATA} (the shared data folder is absent)"}
    aligned, skipped = align_photos(photos)
    project_face(models, aligned[0][1], steps=2)  # Warm-up (first-call costs are not a projection's).
    methods: list[tuple[str, dict[str, Any], int]] = [("encoder", {"steps": 0}, len(aligned))]
    methods += [(f"encoder+{n}", {"steps": n}, len(aligned)) for n in args.steps]
    methods.append((f"w_avg+{args.baseline_steps} (NVlabs)", {"steps": args.baseline_steps, "init": "w_avg"},
                    min(args.baseline_photos, len(aligned))))
    per_photo: dict[str, list[dict[str, Any]]] = {}
    for name, kwargs, count in methods:
        rows = []
        for photo, img in aligned[:count]:
            m = project_face(models, img, **kwargs).metrics
            rows.append({"photo": photo, **{k: m[k] for k in ("psnr", "ssim", "feature_distance", "seconds")}})
            print(f"  {name:24s} {photo:40s} psnr {m['psnr']:6.2f} ssim {m['ssim']:.3f} "
                  f"fd {m['feature_distance']:.3f} {m['seconds']:6.1f} s", flush=True)
        per_photo[name] = rows
    # Compare on the photos the baseline ran on.
    base_name = methods[-1][0]
    base = per_photo[base_name]
    n_base = len(base)
    summary = {name: _summary(rows) for name, rows in per_photo.items()}
    on_base = {name: _summary(rows[:n_base]) for name, rows in per_photo.items()}
    comparison = {}
    for name, _, _ in methods[:-1]:
        a, b = on_base[name], on_base[base_name]
        comparison[name] = {
            "time_ratio": round(a["seconds"] / b["seconds"], 4),
            "psnr_minus_baseline": round(a["psnr"] - b["psnr"], 3),
            "ssim_minus_baseline": round(a["ssim"] - b["ssim"], 4),
            "feature_distance_minus_baseline": round(a["feature_distance"] - b["feature_distance"], 4),
            "reaches_baseline": a["psnr"] >= b["psnr"] and a["feature_distance"] <= b["feature_distance"],
        }
    print(f"\n{'method':26s} {'photos':>6s} {'PSNR':>7s} {'SSIM':>6s} {'feat.d':>7s} {'s/photo':>8s}")
    for name, s in summary.items():
        print(f"{name:26s} {s['photos']:6d} {s['psnr']:7.2f} {s['ssim']:6.3f} {s['feature_distance']:7.3f} "
              f"{s['seconds']:8.2f}")
    print(f"\nOn the {n_base} photos of the {base_name} run (time ratio = seconds / its seconds):")
    for name, c in comparison.items():
        print(f"  {name:24s} time ratio {c['time_ratio']:.3f}  dPSNR {c['psnr_minus_baseline']:+.2f}  "
              f"dSSIM {c['ssim_minus_baseline']:+.3f}  dFD {c['feature_distance_minus_baseline']:+.3f}  "
              f"reaches baseline: {c['reaches_baseline']}")
    return {
        "photos": [p for p, _ in aligned],
        "skipped": skipped,
        "summary": summary,
        "summary_on_baseline_photos": on_base,
        "comparison_to_baseline": comparison,
        "per_photo": per_photo,
        "encoder": models.encoder is not None,
        "encoder_note": models.encoder_note,
    }


SECTIONS: dict[str, Callable[[FaceModels, argparse.Namespace], dict[str, Any]]] = {
    "projection": bench_projection,
}


def bench_edits(models: FaceModels, args: argparse.Namespace) -> dict[str, Any]:
    """Edit quality per direction on the projection section's photos (projected, 50 steps) and on
    generated faces: see benchmarks/bench_face_edits.py."""
    from bench_face_edits import edits_section

    photos = lfw_sample(args.lfw) + [SHARED_DATA / "face_photos" / n for n in FACE_PHOTOS[: args.face_photos]]
    aligned, skipped = align_photos([p for p in photos if p.is_file()])
    return {**edits_section(models, aligned), "skipped": skipped}


SECTIONS["edits"] = bench_edits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--lfw", type=int, default=12, help="LFW photos (one per identity, spread out)")
    parser.add_argument("--face-photos", type=int, default=len(FACE_PHOTOS), help="face_photos photos")
    parser.add_argument("--steps", type=lambda s: [int(v) for v in s.split(",")], default=[25, 50, 100],
                        help="optimisation steps after the encoder (comma-separated)")
    parser.add_argument("--baseline-steps", type=int, default=1000, help="steps of the NVlabs recipe from w_avg")
    parser.add_argument("--baseline-photos", type=int, default=3, help="photos for the slow baseline")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", default=str(RESULTS / "bench_face.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {list(SECTIONS)}")
    models = load_face_models()
    out = Path(args.out)
    results: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    for name in names:
        print(f"== {name}")
        t0 = time.perf_counter()
        section = SECTIONS[name](models, args)
        section["wall_seconds"] = round(time.perf_counter() - t0, 1)
        section["environment"] = {
            "machine": platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
            "torch": torch.__version__, "generator_sha256": models.generator_sha256,
            "generator": str(models.directory), "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        results[name] = section
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
