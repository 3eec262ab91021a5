"""Dataset tools: how well pose normalization and face alignment line things up, and how fast.

Fashion (../shared/data/fashion_products, masterCategory=Apparel): builds the zip at 128², then
re-measures the shoulder and hip midpoints with mediapipe pose on the OUTPUT images and compares
their spread (std, px at 128²) with the spread of the same points on the input photos (scaled to
128²). Also: the share of on-model photos kept, and the view accuracy on the 256 hand-labelled
photos of tests/data/fashion_views.csv.

Faces: builds CelebA (and LFW) zips at 64² and re-measures the eye centre on the aligned crops with
the face mesh; compares with the spread on the inputs (scaled to 64 px wide).

    python benchmarks/bench_dataset.py                          # all Apparel photos, 1000 CelebA, 500 LFW
    python benchmarks/bench_dataset.py --fashion-limit 1000     # a quicker, deterministic subset

Prints a table and writes benchmarks/results/bench_dataset.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = REPO.parent / "shared" / "data"
VIEW_LABELS = REPO / "tests" / "data" / "fashion_views.csv"


def spread(points: np.ndarray) -> dict[str, float]:
    """std of points [N, 2] in x, in y, and the RMS distance to their mean (px)."""
    if len(points) == 0:
        return {"x": float("nan"), "y": float("nan"), "rms": float("nan"), "n": 0}
    d = points - points.mean(axis=0)
    return {
        "x": float(points[:, 0].std()),
        "y": float(points[:, 1].std()),
        "rms": float(np.sqrt((d**2).sum(axis=1).mean())),
        "n": len(points),
    }


def read_zip(path: Path) -> tuple[zipfile.ZipFile, dict[str, Any], dict[str, Any]]:
    zf = zipfile.ZipFile(path)
    return zf, json.loads(zf.read("report.json")), json.loads(zf.read("metadata.json"))["images"]


def bench_fashion(limit: int | None, workers: int, tmp: Path) -> dict[str, Any]:
    from datasets.fashion import FashionOptions, measure_landmarks
    from datasets.prepare import prepare_fashion

    res = 128
    out = tmp / "fashion.zip"
    result = prepare_fashion(
        DATA / "fashion_products" / "images",
        out=out,
        options=FashionOptions(res=res),
        labels=DATA / "fashion_products" / "styles.csv",
        groups="builtin",
        where=["masterCategory=Apparel"],
        limit=limit,
        min_count=50,
        workers=workers,
    )
    zf, report, meta = read_zip(out)
    in_sh, in_hip, out_sh, out_hip, lost = [], [], [], [], 0
    t0 = time.perf_counter()
    for name, m in meta.items():
        if m["view"] != "on_model" or m["frame"] != "pose":  # Headless shots ("box") have no shoulders.
            continue
        w, h = m["source_size"]
        k = res / np.array([w, h])  # Input positions as fractions of the photo, at 128².
        in_sh.append(np.array(m["shoulder_mid"]) * k)
        in_hip.append(np.array(m["hip_mid"]) * k)
        found = measure_landmarks(Image.open(io.BytesIO(zf.read(name))).convert("RGB"))
        if found is None:
            lost += 1
            continue
        out_sh.append(found["shoulder_mid"])
        out_hip.append(found["hip_mid"])
    remeasure_s = time.perf_counter() - t0
    kept_on = report["kept_by_view"].get("on_model", 0)
    skipped_on = sum((report["skipped_by_view"] or {}).get("on_model", {}).values())
    canonical = {"shoulder_mid": [0.5 * res, 0.32 * res], "hip_mid": [0.5 * res, 0.82 * res]}
    out_sh_a, out_hip_a = np.array(out_sh), np.array(out_hip)
    views = view_accuracy(report, meta)
    return {
        "res": res,
        "photos": report["photos"],
        "images": report["images"],
        "kept_by_view": report["kept_by_view"],
        "kept_by_frame": report["kept_by_frame"],
        "skipped_by_reason": report["skipped_by_reason"],
        "skipped_by_view": report["skipped_by_view"],
        "on_model_photos": kept_on + skipped_on,
        "on_model_kept": kept_on,
        "on_model_kept_share": kept_on / max(1, kept_on + skipped_on),
        "on_model_pose_frame_share": report["kept_by_frame"].get("on_model/pose", 0) / max(1, kept_on + skipped_on),
        "input_spread": {"shoulder_mid": spread(np.array(in_sh)), "hip_mid": spread(np.array(in_hip))},
        "output_spread": {"shoulder_mid": spread(out_sh_a), "hip_mid": spread(out_hip_a)},
        "output_mean": {
            "shoulder_mid": out_sh_a.mean(axis=0).tolist() if len(out_sh_a) else None,
            "hip_mid": out_hip_a.mean(axis=0).tolist() if len(out_hip_a) else None,
        },
        "canonical": canonical,
        "remeasure_lost": lost,
        "seconds": result.seconds,
        "photos_per_second": result.photos_per_second,
        "remeasure_seconds": remeasure_s,
        "view_check": views,
    }


def view_accuracy(report: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any] | None:
    """Compare detected views with the hand labels of tests/data/fashion_views.csv (the photos of it
    that this run processed)."""
    if not VIEW_LABELS.exists():
        return None
    truth: dict[str, tuple[str, str]] = {}
    with VIEW_LABELS.open() as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            truth[f"{row['id']}.jpg"] = (row["view"], row["upper_body"])
    detected: dict[str, str] = {m["source"]: m["view"] for m in meta.values()}
    kept = set(detected)
    posed = {m["source"] for m in meta.values() if m.get("frame") == "pose"}
    for s in report["skipped"]:
        if s.get("view"):
            detected[s["photo"]] = s["view"]
    common = [k for k in truth if k in detected]
    if not common:
        return None
    confusion: dict[str, int] = {}
    for k in common:
        key = f"{truth[k][0]}{'/headless' if truth[k][1] == 'no' else ''} -> {detected[k]}"
        confusion[key] = confusion.get(key, 0) + 1
    with_upper = [k for k in common if truth[k] == ("on_model", "yes")]
    all_on = [k for k in common if truth[k][0] == "on_model"]
    return {
        "photos": len(common),
        "accuracy": sum(detected[k] == truth[k][0] for k in common) / len(common),
        "confusion": dict(sorted(confusion.items())),
        "on_model_upper_body_kept": sum(k in kept for k in with_upper) / max(1, len(with_upper)),
        "on_model_upper_body_pose_normalized": sum(k in posed for k in with_upper) / max(1, len(with_upper)),
        "on_model_all_kept": sum(k in kept and detected[k] == "on_model" for k in all_on) / max(1, len(all_on)),
    }


def bench_faces(name: str, images: Path, limit: int, workers: int, tmp: Path, **kwargs: Any) -> dict[str, Any]:
    from datasets.faces import FaceOptions
    from datasets.prepare import prepare_faces
    from tryon.face.align import face_keypoints
    from tryon.vision import detectors

    res = 64
    out = tmp / f"{name}.zip"
    result = prepare_faces(images, out=out, options=FaceOptions(res=res), limit=limit, workers=workers, **kwargs)
    zf, report, meta = read_zip(out)
    in_eye, out_eye, lost = [], [], 0
    for member, m in meta.items():
        w, _h = m["source_size"]
        in_eye.append(np.array(m["eyes"]).mean(axis=0) * res / w)
        crop = (
            Image.open(io.BytesIO(zf.read(member))).convert("RGB").resize((4 * res, 4 * res), Image.Resampling.BICUBIC)
        )
        meshes = detectors.detect_face_mesh(np.asarray(crop), max_faces=1)
        if not meshes:
            lost += 1
            continue
        eyes, _ = face_keypoints(meshes[0].xy)
        out_eye.append(eyes.mean(axis=0) / 4)
    return {
        "res": res,
        "photos": report["photos"],
        "images": report["images"],
        "skipped_by_reason": report["skipped_by_reason"],
        "input_spread_eye_centre": spread(np.array(in_eye)),
        "output_spread_eye_centre": spread(np.array(out_eye)),
        "output_mean_eye_centre": np.array(out_eye).mean(axis=0).tolist() if out_eye else None,
        "remeasure_lost": lost,
        "seconds": result.seconds,
        "photos_per_second": result.photos_per_second,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion-limit", type=int, help="only the first N Apparel photos (default: all)")
    parser.add_argument("--celeba-limit", type=int, default=1000)
    parser.add_argument("--lfw-limit", type=int, default=500)
    parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    parser.add_argument("--skip-fashion", action="store_true")
    parser.add_argument("--skip-faces", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_dataset.json")
    parser.add_argument(
        "--keep-zips", type=Path, metavar="DIR", help="write the zips here (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"{DATA} is absent: nothing to measure", file=sys.stderr)
        return 1
    from datasets.pipeline import default_workers

    workers = default_workers() if args.workers is None else args.workers
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "workers": workers},
        "command": " ".join(["python", "benchmarks/bench_dataset.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.keep_zips is not None:
            tmp = args.keep_zips
            tmp.mkdir(parents=True, exist_ok=True)
        if not args.skip_fashion:
            results["fashion"] = bench_fashion(args.fashion_limit, workers, tmp)
        if not args.skip_faces:
            results["celeba"] = bench_faces(
                "celeba",
                DATA / "faces_celeba" / "images",
                args.celeba_limit,
                workers,
                tmp,
                attributes=DATA / "faces_celeba" / "list_attr_celeba.txt",
            )
            results["lfw"] = bench_faces("lfw", DATA / "faces_lfw" / "images", args.lfw_limit, workers, tmp)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {args.out}")
    return 0


def print_table(r: dict[str, Any]) -> None:
    if "fashion" in r:
        f = r["fashion"]
        print(
            f"fashion (Apparel, {f['res']}²): {f['photos']} photos -> {f['images']} images, "
            f"{f['photos_per_second']:.1f} photos/s with {r['machine']['workers']} workers"
        )
        print(
            f"  on-model kept: {f['on_model_kept']} of {f['on_model_photos']} ({f['on_model_kept_share']:.1%}); "
            f"pose-normalized {f['kept_by_frame'].get('on_model/pose', 0)} ({f['on_model_pose_frame_share']:.1%}), "
            f"headless framed by box {f['kept_by_frame'].get('on_model/box', 0)}"
        )
        print(
            f"  {'point':<14}{'input std x/y':>18}{'output std x/y':>18}{'output rms':>12}"
            "   (px at 128², pose-framed, n)"
        )
        for p in ("shoulder_mid", "hip_mid"):
            i, o = f["input_spread"][p], f["output_spread"][p]
            print(
                f"  {p:<14}{i['x']:>8.2f} /{i['y']:>7.2f}{o['x']:>9.2f} /{o['y']:>7.2f}{o['rms']:>12.2f}   n={o['n']}"
            )
        if f.get("view_check"):
            v = f["view_check"]
            print(
                f"  views vs hand labels ({v['photos']} photos): accuracy {v['accuracy']:.1%}; on-model with upper "
                f"body pose-normalized {v['on_model_upper_body_pose_normalized']:.1%}; all on-model kept "
                f"{v['on_model_all_kept']:.1%}"
            )
            print(f"    {v['confusion']}")
        print(f"  skipped: {f['skipped_by_reason']}")
    for key in ("celeba", "lfw"):
        if key in r:
            c = r[key]
            i, o = c["input_spread_eye_centre"], c["output_spread_eye_centre"]
            print(
                f"{key} ({c['res']}²): {c['photos']} photos -> {c['images']} faces, "
                f"{c['photos_per_second']:.1f} photos/s; "
                f"eye-centre std x/y: input {i['x']:.2f}/{i['y']:.2f} -> output {o['x']:.2f}/{o['y']:.2f} px "
                f"(rms {o['rms']:.2f}, n={o['n']}); skipped {c['skipped_by_reason']}"
            )


if __name__ == "__main__":
    sys.exit(main())
