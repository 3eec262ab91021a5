"""Garment transfer on real garment photos: colour fidelity, category agreement, seconds.

For a bounded, deterministic sample of ../shared/data/tryon_examples/ootd_garment (tops, bottoms and
dresses taken in turn, see `true_category`), runs
`tryon.pipelines.garment_transfer` and records per photo:

- colour_distance: CIELAB ΔE76 between the mean colour of the garment in the photo and the mean
  colour of the worn region of the result; colour_distance_before: the same for the model before
  the transfer (same seed and labels: what the condition alone gives); colour_distance_flat: for
  the flat projection (how well the projection kept the colour);
- category_agreement: the domain classifier reads the estimated category in the result;
  photo_category_correct: the classifier's reading of the photo against the true category
  (`true_category`: tops, bottoms, or "other" for dresses);
- dominant_colour_kept: the colour name (`tryon.fashion.transfer.COLOUR_NAMES`) of the most
  garment pixels in the photo is that of the most worn-region pixels in the result; the same before
  the colour-matching step (`dominant_colour_unmatched`, `colour_distance_unmatched`; `--no-match`
  turns the step off altogether);
- layout_error: the photo garment's and the result garment's bounding boxes cut into 4 x 4 cells,
  the mean ΔE76 between the same cells' mean colours (`tryon.fashion.transfer.layout_error`: is the
  arrangement of colours kept, top / bottom, left / right);
- projection PSNR of the flat reconstruction, and seconds per step of the pipeline.

Every metric is measured on the result's garment mask (`garment_mask`: the person less skin in the
category's band). `--variants` measures several colour-matching steps on the same projection: the
region (`box`, the fixed per-category box; `garment`, the garment mask) and the matching (`rank`,
by smoothed lightness rank; `layout`, by place in the garment); the first variant is the row shown.
`--sheet` writes a PNG per photo named: photo, projection worn unmatched, then each variant.

    python benchmarks/bench_transfer.py --limit 6 --steps 50 [--threads 1]
    python benchmarks/bench_transfer.py --data ../shared/data/tryon_examples/{ootd_garment,idm_cloth} \
        --limit 100 --steps 20 --variants garment-layout box-rank   # every try-on example garment (58)

Prints a table and writes benchmarks/results/bench_transfer.json.
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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tryon.fashion import FashionPipeline, frame_garment_photo, garment_transfer
from tryon.fashion.transfer import REGIONS, match_colours, transfer_metrics
from tryon.vision.io import ImageLimits, load_image

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tryon_examples" / "ootd_garment"


def true_category(path: Path) -> str:
    """The garment's category in the shipped schema, from the file name. VITON-HD `*_00` are tops; the
    DressCode `*_1` ids come in blocks (checked by eye on a contact sheet of the folder): up to
    050999 upper body (tops), 051000-051995 lower body (bottoms), from 051998 dresses (which the
    shipped schema files under "other": dresses were too rare to get their own group)."""
    if path.stem.endswith("_00"):
        return "tops"
    number = int(path.stem.split("_")[0])
    if number < 51000:
        return "tops"
    return "bottoms" if number < 51996 else "other"


def sample(folder: Path, limit: int) -> list[Path]:
    """Tops, bottoms and dresses in turn, each sorted by name: deterministic and balanced."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.jpg")):
        groups.setdefault(true_category(path), []).append(path)
    order = [groups.get(k, []) for k in ("tops", "bottoms", "other")]
    out: list[Path] = []
    for i in range(max(len(g) for g in order)):
        out += [g[i] for g in order if i < len(g)]
    return out[:limit]


def variant_row(m: dict[str, Any]) -> dict[str, Any]:
    """The colour figures of one colour-matching variant of one photo."""
    keys = ("dominant_colour_photo", "dominant_colour_worn", "dominant_colour_kept", "colour_distance",
            "colour_agreement", "layout_error", "garment_pixels")
    return {"metrics": m, **{k: m.get(k) for k in keys}}


def variant_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str) -> float:
        return round(float(np.mean([float(r[key]) for r in rows if r[key] is not None])), 3)

    return {
        "dominant_colour_kept_rate": mean("dominant_colour_kept"),
        "colour_agreement_rate": mean("colour_agreement"),
        "colour_distance_mean": mean("colour_distance"),
        "layout_error_mean": mean("layout_error"),
        "garment_pixels_mean": mean("garment_pixels"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", default=[DATA], help="folders of garment photos "
                        "(each sampled with --limit)")
    parser.add_argument("--limit", type=int, default=6, help="photos (default 6)")
    parser.add_argument("--steps", type=int, default=50, help="projection steps (default 50)")
    parser.add_argument("--checkpoint", default=None, help="fashion checkpoint (default: the shipped one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-match", action="store_true", help="without the colour-matching step (the "
                        "before figures)")
    parser.add_argument("--variants", nargs="+", default=["garment-layout"], help="colour matching steps "
                        "REGION-MATCHING (REGION: garment | box; MATCHING: layout | rank); default garment-layout")
    parser.add_argument("--sheet", nargs="*", default=[], help="photo names (e.g. 00126_00.jpg) for "
                        "benchmarks/results/bench_transfer_sheet.png")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_transfer.json")
    parser.add_argument("--save-images", type=Path, default=None, help="folder for framed/flat/on_model strips")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared CPU, more "
                        "threads than free cores slows projection down 10-20x)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    missing = [str(d) for d in args.data if not d.is_dir()]
    if missing:
        print(f"no data at {', '.join(missing)} (../shared is absent)", file=sys.stderr)
        return 2
    photos = [p for d in args.data for p in sample(d, args.limit)]
    pipe = FashionPipeline.from_checkpoint(args.checkpoint, device=args.device)
    rows: list[dict[str, Any]] = []
    header = (
        f"{'photo':<14} {'truth':<8} {'read':<10} {'colour':<9} {'ΔE':>6} {'ΔE_bef':>7} {'ΔE_flat':>7} "
        f"{'cat_ok':>6} {'psnr':>6} {'dominant photo->worn':<22} {'s':>7}"
    )
    print(header)
    variants = [tuple(v.split("-")) for v in args.variants]
    bad = [v for v in variants if len(v) != 2 or v[0] not in REGIONS or v[1] not in ("layout", "rank")]
    if bad:
        print(f"unknown variants {bad}: give REGION-MATCHING, e.g. garment-layout box-rank", file=sys.stderr)
        return 2
    sheet_rows: list[np.ndarray] = []
    by_variant: dict[str, list[dict[str, Any]]] = {"-".join(v): [] for v in variants}
    for path in photos:
        photo = load_image(path, limits=ImageLimits(), name=path.name)
        started = time.perf_counter()
        result = garment_transfer(pipe, photo, steps=args.steps, match_colour=False)
        seconds = time.perf_counter() - started
        unmatched = np.asarray(result.on_model)
        framed = frame_garment_photo(photo, pipe.resolution)
        category = result.labels.get(pipe.field_columns().get("category", ""))
        images = []
        for region_name, matching in variants if not args.no_match else []:
            region = REGIONS[region_name](unmatched, category)
            worn = match_colours(unmatched, region, np.asarray(framed.image), framed.mask, layout=matching == "layout")
            vm = transfer_metrics(pipe, framed, np.asarray(result.flat), worn, np.asarray(result.base_on_model),
                                  category=category, estimate=result.estimate, unmatched=unmatched)
            by_variant[f"{region_name}-{matching}"].append({"photo": path.name, **variant_row(vm)})
            images.append(worn)
        m = by_variant[args.variants[0]][-1]["metrics"] if not args.no_match else result.metrics
        if path.name in args.sheet:
            sheet_rows.append(np.concatenate([np.asarray(result.framed), unmatched, *images], axis=1))
        read = result.estimate.get("articleGroup", {}).get("value")
        row = {
            "photo": path.name,
            "true_category": true_category(path),
            "photo_category_read": read,
            "photo_category_correct": read == true_category(path),
            "labels": result.labels,
            "colour_distance": m["colour_distance"],
            "colour_distance_before": m["colour_distance_before"],
            "colour_distance_flat": m["colour_distance_flat"],
            "category_agreement": m.get("category_agreement"),
            "result_category_correct": m["result_reading"].get("articleGroup", {}).get("value") == true_category(path),
            "colour_agreement": m.get("colour_agreement"),
            "dominant_colour_photo": m["dominant_colour_photo"],
            "dominant_colour_worn": m["dominant_colour_worn"],
            "dominant_colour_kept": m["dominant_colour_kept"],
            "colour_distance_unmatched": m.get("colour_distance_unmatched"),
            "layout_error": m["layout_error"],
            "layout_error_unmatched": m.get("layout_error_unmatched"),
            "dominant_colour_unmatched": m.get("dominant_colour_unmatched"),
            "projection_psnr_db": round(result.metrics["projection"]["psnr_db"], 2),
            "seconds": round(seconds, 2),
            "seconds_per_step": round(result.timings["project_s"] / args.steps, 3),
            "timings": {k: round(v, 3) for k, v in result.timings.items()},
        }
        rows.append(row)
        print(
            f"{path.name:<14} {row['true_category']:<8} {read!s:<10} {result.labels.get('colourGroup', '-'):<9} "
            f"{row['colour_distance']:>6.1f} {row['colour_distance_before']:>7.1f} {row['colour_distance_flat']:>7.1f} "
            f"{row['category_agreement']!s:>6} {row['projection_psnr_db']:>6.1f} "
            f"{m['dominant_colour_photo'] + '->' + m['dominant_colour_worn']:<22} {seconds:>7.1f}",
            flush=True,
        )
        if args.save_images is not None:
            args.save_images.mkdir(parents=True, exist_ok=True)
            strip = np.concatenate(
                [np.asarray(x) for x in (result.framed, result.flat, result.base_on_model)] + [images[0] if images
                 else unmatched], axis=1
            )
            from PIL import Image

            Image.fromarray(strip).save(args.save_images / f"{path.stem}.png")

    def mean(key: str) -> float:
        return float(np.mean([float(r[key]) for r in rows]))

    summary = {
        "photos": len(rows),
        "steps": args.steps,
        "colour_matched": not args.no_match,
        "dominant_colour_kept_rate": round(mean("dominant_colour_kept"), 3),
        **(
            {}
            if args.no_match
            else {
                "dominant_colour_kept_unmatched_rate": round(
                    float(np.mean([r["dominant_colour_photo"] == r["dominant_colour_unmatched"] for r in rows])), 3
                ),
                "colour_distance_unmatched_mean": round(mean("colour_distance_unmatched"), 2),
            }
        ),
        "colour_distance_mean": round(mean("colour_distance"), 2),
        "layout_error_mean": round(mean("layout_error"), 2),
        **({} if args.no_match else {"layout_error_unmatched_mean": round(mean("layout_error_unmatched"), 2)}),
        "colour_distance_before_mean": round(mean("colour_distance_before"), 2),
        "colour_distance_flat_mean": round(mean("colour_distance_flat"), 2),
        "category_agreement_rate": round(mean("category_agreement"), 3),
        "colour_agreement_rate": round(mean("colour_agreement"), 3),
        "photo_category_accuracy": round(mean("photo_category_correct"), 3),
        "result_category_accuracy": round(mean("result_category_correct"), 3),
        "projection_psnr_db_mean": round(mean("projection_psnr_db"), 2),
        "seconds_mean": round(mean("seconds"), 2),
        "seconds_per_step_mean": round(mean("seconds_per_step"), 3),
    }
    summary["variants"] = {name: variant_summary(vrows) for name, vrows in by_variant.items() if vrows}
    print()
    for k, v in summary.items():
        print(f"{k:<30} {v}")
    if sheet_rows:
        from PIL import Image

        sheet = RESULTS / "bench_transfer_sheet.png"
        Image.fromarray(np.concatenate(sheet_rows, axis=0)).save(sheet)
        print(f"wrote {sheet} (columns: photo, unmatched, {', '.join(args.variants)})")
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "summary": summary,
        "rows": rows,
        "variants": {name: [{k: v for k, v in r.items() if k != "metrics"} for r in vrows]
                     for name, vrows in by_variant.items()},
        "data": [str(d) for d in args.data],
        "limit_per_folder": args.limit,
        "checkpoint": str(pipe.directory),
        "device": args.device,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
