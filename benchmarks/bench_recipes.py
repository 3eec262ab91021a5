"""Time to quality: training recipes compared at an equal budget of CPU minutes.

Each recipe trains the face campaign's model (tiny64, unconditional, x-flips, batch 16, bf16, compiled ops,
one thread: the options of training/campaign/face/campaign.json) from scratch, with the same seed, for the
same wall time, one after the other; then `tryon metrics` measures the last snapshot (FD, KID,
precision/recall on our face feature network, 1,000 generated images). Run it while the machine's load stays
the same for every recipe (e.g. a campaign run on the other core the whole time): the recipes are compared
with each other, and the kimg each reached says how fast it trained under that load.

    python benchmarks/bench_recipes.py --data data/faces64.zip --minutes 20
    python benchmarks/bench_recipes.py --data data/faces64.zip --minutes 20 --recipes current no-pl

Writes benchmarks/results/bench_recipes.json and a sheet of each recipe's samples (bench_recipes.png).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"

BASE = [
    "--cfg", "tiny64", "--no-cond", "--mirror", "--batch", "16", "--kimg", "100000", "--tick", "1", "--snap", "1",
    "--keep", "1", "--workers", "0", "--preload", "on", "--ops", "cpp", "--channels-last", "--amp", "bf16",
    "--seed", "0", "--no-progress",
]

# name -> (extra `tryon train` options, why it might converge faster per CPU-minute)
RECIPES: dict[str, tuple[list[str], str]] = {
    "current": ([], "the campaign's recipe: tiny64 preset (path length 2, style mixing 0.9, lr 0.0025, batch 16)"),
    "no-pl": (
        ["--pl-weight", "0", "--style-mixing", "0"],
        "StyleGAN2-ADA's small-data (CIFAR) configuration drops path-length regularisation and style mixing; "
        "no path-length pass every 4th G step also means more images per minute",
    ),
    "batch8": (["--batch", "8"], "half the batch: twice the G and D updates per image (R1 gamma follows the batch)"),
    "lr2x": (["--lr", "0.005"], "twice the learning rate of G and D"),
}


def _snapshot(run_dir: Path) -> Path:
    snaps = sorted(run_dir.glob("network-snapshot-*"))
    if not snaps:
        raise SystemExit(f"{run_dir}: no snapshot was written")
    return snaps[-1]


def run_recipe(name: str, extra: list[str], data: Path, minutes: float, num_gen: int, feature_net: str,
               work: Path) -> dict:
    outdir = work / name
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    train = [sys.executable, "-m", "tryon.cli", "train", "--data", str(data), "--outdir", str(outdir), *BASE,
             "--max-minutes", str(minutes), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(train, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name}: training failed: {proc.stderr.strip().splitlines()[-1:]}")
    run_dir = next(outdir.iterdir())
    snap = _snapshot(run_dir)
    kimg = float(snap.name.rsplit("-", 1)[1])
    metrics_json = work / f"{name}.metrics.json"
    metrics = [sys.executable, "-m", "tryon.cli", "metrics", "--checkpoint", str(snap), "--data", str(data),
               "--feature-net", feature_net, "--metrics", "fd,kid,pr", "--num-gen", str(num_gen),
               "--json", str(metrics_json)]
    proc = subprocess.run(metrics, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: metrics failed: {proc.stderr.strip().splitlines()[-1:]}")
    doc = json.loads(metrics_json.read_text())
    m = doc.get("results", doc)
    return {"recipe": name, "options": extra, "why": RECIPES[name][1], "minutes": minutes, "wall_s": wall,
            "kimg": kimg, "sec_per_kimg": minutes * 60 / kimg if kimg else None, "samples": str(snap / "samples.png"),
            **{k: m[k] for k in ("fd", "kid", "precision", "recall") if k in m}}


def sheet(results: list[dict], out: Path) -> None:
    """The recipes' sample grids side by side (top-left 4x4 of each), captioned."""
    from PIL import Image, ImageDraw

    tiles = []
    for r in results:
        grid = Image.open(r["samples"]).convert("RGB")
        side = min(grid.size) // 2
        tile = grid.crop((0, 0, side, side))
        canvas = Image.new("RGB", (side, side + 28), "white")
        canvas.paste(tile, (0, 28))
        ImageDraw.Draw(canvas).text((4, 4), f"{r['recipe']}: {r['kimg']:.1f} kimg, FD {r['fd']:.2f}", fill="black")
        tiles.append(canvas)
    w = sum(t.width for t in tiles) + 8 * (len(tiles) - 1)
    page = Image.new("RGB", (w, max(t.height for t in tiles)), "white")
    x = 0
    for t in tiles:
        page.paste(t, (x, 0))
        x += t.width + 8
    page.save(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the face dataset zip (tryon dataset faces)")
    parser.add_argument("--minutes", type=float, default=20, help="wall-time budget per recipe")
    parser.add_argument("--recipes", nargs="+", default=["current", "no-pl", "batch8"], choices=sorted(RECIPES))
    parser.add_argument("--num-gen", type=int, default=1000)
    parser.add_argument("--feature-net", default=str(REPO_ROOT / "tryon" / "assets" / "face_features"))
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_recipes.json")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_recipes_") as tmp:
        for name in args.recipes:
            r = run_recipe(name, RECIPES[name][0], args.data.resolve(), args.minutes, args.num_gen,
                           args.feature_net, Path(tmp))
            results.append(r)
            print(f"{name:<8} {r['kimg']:>7.1f} kimg  {r['sec_per_kimg']:>6.1f} s/kimg  FD {r['fd']:.3f}  "
                  f"KID {r['kid']:.4f}  precision {r['precision']:.3f}  recall {r['recall']:.3f}", flush=True)
        sheet(results, args.out.with_suffix(".png"))
    for r in results:
        r.pop("samples")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "bench_recipes", "load_average_at_end": os.getloadavg(),
                                    "results": results}, indent=2))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
