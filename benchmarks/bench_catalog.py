"""The generated catalog against our own fashion feature network: what it reads in each item.

For every item of the catalog plan (`FashionPipeline.catalog_specs(CATALOG_PER_GROUP)`: the groups the
training data holds >= 50 images of, in their most frequent colours) renders all `--candidates` seeds
that `tryon.fashion.catalog.verify_catalog` would try (k, k + P, k + 2P, ...) and reads each with the
classifier (tryon/assets/fashion_features) on the checked labels (category and colour groups).

- before: the catalog as it was, each item's first seed (k) shown whatever the classifier reads:
  its accuracy on category, colour and both;
- after: the service's rule, the first candidate read as both labels, items with none left out:
  items kept per label, and their scores (the classifier's probability of the item's labels);
- the share of all rendered candidates the classifier agrees with, per label and per group (how
  hard each label is for the generator, as our classifier sees it).

The "after" accuracy is 1.0 by construction (the same classifier picks and judges); the numbers that
say something are the before accuracy and the shares kept.

    python benchmarks/bench_catalog.py [--candidates 16] [--checkpoint DIR]

Prints a table and writes benchmarks/results/bench_catalog.json, and bench_catalog.png: per item (in plan
order, 19 a row) its first seed above the candidate kept (white: none kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tryon.fashion import FashionPipeline
from tryon.fashion.catalog import CANDIDATE_BATCH, candidate_seeds, checked_columns, read_labels
from tryon.services.fashion import CATALOG_PER_GROUP

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=16, help="seeds per item (default 16, the service's)")
    parser.add_argument("--checkpoint", default=None, help="fashion checkpoint (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_catalog.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = FashionPipeline.from_checkpoint(args.checkpoint)
    columns = checked_columns(pipe)
    if not columns:
        print("the classifier reads none of the generator's category / colour columns", file=sys.stderr)
        return 2
    category_col, colour_col = (*columns, None)[:2]
    plan = pipe.catalog_specs(CATALOG_PER_GROUP)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    sheet: list[np.ndarray] = []  # Per item: its first seed (top) over the kept candidate (bottom; white: none).
    print(f"{'item':<40} {'first seed reads':<26} {'agree':>6} {'kept':>5} {'seed':>5} {'scores':>12}")
    for position, (name, spec) in enumerate(plan):
        seeds = candidate_seeds(position, len(plan), args.candidates)
        readings, images = [], []
        for start in range(0, len(seeds), CANDIDATE_BATCH):
            batch = [dataclasses.replace(spec, seed=s) for s in seeds[start : start + CANDIDATE_BATCH]]
            images += pipe.generate_specs(batch)[1]
            readings += read_labels(pipe, images[start:])
        hits = [all(r[c][0] == spec.labels[c] for c in columns) for r in readings]
        first = readings[0]
        kept_at = hits.index(True) if any(hits) else None
        row: dict[str, Any] = {
            "name": name,
            "labels": spec.labels,
            "first_seed": seeds[0],
            "first_reading": {c: first[c][0] for c in columns},
            "first_category_ok": first[category_col][0] == spec.labels[category_col] if category_col else None,
            "first_colour_ok": first[colour_col][0] == spec.labels[colour_col] if colour_col else None,
            "first_ok": hits[0],
            "candidates_agreeing": int(sum(hits)),
            "candidates": len(hits),
            "kept": kept_at is not None,
            "kept_seed": seeds[kept_at] if kept_at is not None else None,
            "candidates_tried": (kept_at + 1) if kept_at is not None else len(hits),
            "scores": (
                {c: round(readings[kept_at][c][1][spec.labels[c]], 4) for c in columns} if kept_at is not None else None
            ),
        }
        rows.append(row)
        blank = np.full_like(images[0], 255)
        sheet.append(np.concatenate([images[0], images[kept_at] if kept_at is not None else blank], axis=0))
        scores = "/".join(f"{v:.2f}" for v in (row["scores"] or {}).values()) or "-"
        reads = " ".join(row["first_reading"].values())
        print(f"{name:<40} {reads:<26} {row['candidates_agreeing']:>3}/{len(hits):<2} {row['kept']!s:>5} "
              f"{row['kept_seed'] if row['kept'] else '-':>5} {scores:>12}", flush=True)
    seconds = time.perf_counter() - started

    def rate(key: str, subset: list[dict[str, Any]] | None = None) -> float:
        subset = rows if subset is None else subset
        return round(float(np.mean([bool(r[key]) for r in subset])), 3) if subset else float("nan")

    def agreeing(subset: list[dict[str, Any]]) -> float:
        return round(sum(r["candidates_agreeing"] for r in subset) / sum(r["candidates"] for r in subset), 3)

    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        category = r["labels"].get(category_col, "-") if category_col else "-"
        view = r["labels"].get(pipe.field_columns().get("view", ""), "-")
        by_group[f"{category} ({view})"].append(r)
    kept = [r for r in rows if r["kept"]]
    summary = {
        "items_planned": len(rows),
        "candidates_per_item": args.candidates,
        "before_category_accuracy": rate("first_category_ok"),
        "before_colour_accuracy": rate("first_colour_ok"),
        "before_accuracy": rate("first_ok"),
        "after_items_kept": len(kept),
        "after_items_kept_share": round(len(kept) / len(rows), 3),
        "after_accuracy": 1.0 if kept else None,
        "candidates_agreeing_share": agreeing(rows),
        "candidates_rendered_by_service": int(sum(r["candidates_tried"] for r in rows)),
        "candidates_kept_share_in_service": round(len(kept) / sum(r["candidates_tried"] for r in rows), 4),
        "mean_scores_kept": {
            c: round(float(np.mean([r["scores"][c] for r in kept])), 3) for c in columns
        } if kept else None,
        "by_group": {
            g: {
                "items": len(rs),
                "kept": sum(r["kept"] for r in rs),
                "before_accuracy": rate("first_ok", rs),
                "candidates_agreeing_share": agreeing(rs),
            }
            for g, rs in by_group.items()
        },
        "seconds": round(seconds, 1),
    }
    print()
    print(f"{'group':<26} {'items':>5} {'kept':>5} {'before acc':>10} {'candidates agreeing':>20}")
    for g, s in summary["by_group"].items():
        print(f"{g:<26} {s['items']:>5} {s['kept']:>5} {s['before_accuracy']:>10.3f} "
              f"{s['candidates_agreeing_share']:>20.3f}")
    print()
    for k, v in summary.items():
        if k != "by_group":
            print(f"{k:<34} {v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "summary": summary,
        "rows": rows,
        "checked_columns": list(columns),
        "checkpoint": str(pipe.directory),
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    from PIL import Image

    per_row = 19
    strips = [np.concatenate(sheet[i : i + per_row], axis=1) for i in range(0, len(sheet), per_row)]
    width = max(s.shape[1] for s in strips)
    strips = [np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
    Image.fromarray(np.concatenate(strips, axis=0)).save(args.out.with_suffix(".png"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
