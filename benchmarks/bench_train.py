"""Training speed: seconds per kimg and peak memory per preset and device, speed options on vs off.

Each cell runs in a fresh process (so peak memory is the cell's own) and times whole training steps
of `training.loop.Trainer` on synthetic in-memory data (random images and one-hot labels): all four
phases, with the lazy regularisers at their usual intervals (path length every 4 steps, R1 every 16),
ADA's augmentation at p = 0.3, G EMA. Warm-up steps are not timed. s/kimg = seconds / (images / 1000).

Variants: `ops` ref vs auto (compiled kernels where `auto` picks them; `--ops ref cpp` forces the C++
CPU kernels), channels_last off vs on; on CUDA
also AMP off / fp16 / bf16 (AMP does not run on the CPU). Peak memory is the process's max RSS on the
CPU and torch.cuda.max_memory_allocated on a GPU. On a shared CPU, CPU seconds per kimg (all threads)
is the steadier number; with --threads 1 it equals the wall time of an idle core.

    python benchmarks/bench_train.py                              # tiny64 on the CPU, 4 variants
    python benchmarks/bench_train.py --presets tiny64 small128 --devices cuda --batch 64 --steps 32

`--baseline REV` compares the trainer of an earlier commit with this checkout's, side by side in one run
(these machines are noisy, so only ratios within one run mean much): REV is checked out into a temporary
git worktree and its own bench_train.py times its cells. On the CPU the cells are the campaign's options
(ops cpp, channels_last, batch 16): REV in fp32 and bf16 on one thread, this checkout in bf16 on each
of `--threads` (default 1 2). Run it on an otherwise idle machine (two threads need both cores).

    python benchmarks/bench_train.py --baseline f9f2b1b --presets tiny64 small128 \
        --out benchmarks/results/bench_train_cpu.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]


class SyntheticImages:
    """`ImageZipDataset`-like: random uint8 images [C, H, W] and one-hot labels (c_dim classes)."""

    def __init__(self, num: int, resolution: int, c_dim: int, seed: int = 0) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, size=(num, 3, resolution, resolution), dtype=np.uint8)
        self.labels = np.eye(c_dim, dtype=np.float32)[rng.integers(0, c_dim, size=num)]
        self.resolution = resolution
        self.num_channels = 3
        self.label_dim = c_dim
        self.label_schema = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> tuple[Any, Any]:
        import torch

        return torch.from_numpy(self.images[idx]), torch.from_numpy(self.labels[idx])

    def get_label(self, idx: int) -> Any:
        return self.labels[idx]


def _cpu_seconds() -> float:
    """CPU time of this process (all threads): on a busy machine a steadier measure than wall time."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """Time one (preset, device, variant) in this process."""
    import torch

    if cell.get("threads"):
        torch.set_num_threads(int(cell["threads"]))
    import tryon.ops
    from training import dist
    from training.loop import RealImages, Trainer, peak_memory_gib
    from training.options import PRESETS, resolve_options
    from training.train import add_arguments

    preset = PRESETS[cell["preset"]]
    res = preset.resolution
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [
        "--data", "synthetic.zip", "--outdir", "unused", "--cfg", preset.name, "--batch", str(cell["batch"]),
        "--aug", "fixed", "--p", "0.3", "--ops", cell["ops"], "--amp", cell["amp"], "--workers", "0",
        "--channels-last" if cell["channels_last"] else "--no-channels-last", "--no-progress",
    ]
    args = parser.parse_args(argv)
    device = torch.device(cell["device"])
    ds = SyntheticImages(max(cell["batch"] * 4, 64), res, c_dim=10)
    opts = resolve_options(
        args, world_size=1, device=device.type,
        dataset_info={"size": len(ds), "resolution": res, "channels": 3, "label_dim": 10},
    )
    info = dist.DistInfo(rank=0, world_size=1, local_rank=0, device=device, backend=None)
    data = RealImages(ds, batch=opts.batch, rank=0, world_size=1, seed=0, device=device, workers=0, c_dim=10)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with tryon.ops.use_impl(opts.ops):
        trainer = Trainer(opts, info, data)
        for _ in range(cell["warmup"]):
            trainer.step()
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start, start_cpu = time.perf_counter(), _cpu_seconds()
        for _ in range(cell["steps"]):
            trainer.step()
        sync()
        seconds, cpu_seconds = time.perf_counter() - start, _cpu_seconds() - start_cpu
    kimg = cell["steps"] * opts.batch / 1000
    return {
        **cell,
        "sec_per_kimg": seconds / kimg,
        "cpu_sec_per_kimg": cpu_seconds / kimg,
        "sec_per_step": seconds / cell["steps"],
        "peak_mem_gib": peak_memory_gib(device),
        "ops_backends": tryon.ops.backends(),
        "threads": torch.get_num_threads(),
    }


def _checkout(rev: str) -> Path:
    """A temporary git worktree of commit `rev` (removed at the end of the run)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bench_train_baseline_"))
    folder.rmdir()
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), rev], cwd=REPO_ROOT, check=True,
                   capture_output=True)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny64"])
    parser.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu, + cuda if present)")
    parser.add_argument("--batch", type=int, default=None, help="batch (default: 8 on the CPU, 64 on CUDA)")
    parser.add_argument("--steps", type=int, default=16, help="timed steps per cell (16 = one R1 interval)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch CPU threads, one cell set each (default: torch's; with --baseline: 1 2)")
    parser.add_argument("--baseline", metavar="REV", help="also time the trainer of git commit REV (see above)")
    parser.add_argument("--ops", nargs="+", default=["ref", "auto"], choices=["ref", "auto", "cpp", "cuda"],
                        help="op implementations to compare (default: ref auto)")
    parser.add_argument("--out", default=str(RESULTS / "bench_train.json"))
    parser.add_argument("--cell", help=argparse.SUPPRESS)  # Internal: run one cell, print its JSON.
    args = parser.parse_args()
    if args.cell:
        print("RESULT " + json.dumps(run_cell(json.loads(args.cell))), flush=True)
        return 0

    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    cells = []
    if args.baseline:
        threads_list = args.threads or [1, 2]
        for preset in args.presets:
            common = {"preset": preset, "device": "cpu", "batch": args.batch or 16, "ops": "cpp",
                      "channels_last": True, "steps": args.steps, "warmup": args.warmup}
            cells.append({**common, "code": args.baseline, "amp": "off", "threads": 1})
            cells.append({**common, "code": args.baseline, "amp": "bf16", "threads": 1})
            for threads in threads_list:
                cells.append({**common, "code": "this", "amp": "bf16", "threads": threads})
    for preset, device in [] if args.baseline else itertools.product(args.presets, devices):
        amps = ["off", "fp16", "bf16"] if device == "cuda" else ["off", "bf16"]
        batch = args.batch or (64 if device == "cuda" else 8)
        ops_list = [o for o in args.ops if o != ("cuda" if device == "cpu" else "cpp")]
        for threads in args.threads or [None]:
            for ops, channels_last, amp in itertools.product(ops_list, [False, True], amps):
                cells.append({
                    "preset": preset, "device": device, "batch": batch, "ops": ops, "channels_last": channels_last,
                    "amp": amp, "steps": args.steps, "warmup": args.warmup, "threads": threads, "code": "this",
                })
    baseline_dir = _checkout(args.baseline) if args.baseline else None

    results = []
    header = (
        f"{'code':<8} {'preset':<9} {'device':<6} {'batch':>5} {'thr':>3} {'ops':<5} {'ch_last':<7} {'amp':<5} "
        f"{'s/kimg':>9} {'cpu s/kimg':>10} {'peak GiB':>9} {'speed-up':>8}"
    )
    print(header)
    print("-" * len(header))
    first: dict[str, float] = {}  # preset -> s/kimg of its first cell (the baseline's fp32 with --baseline)
    for cell in cells:
        root = baseline_dir if cell["code"] != "this" else REPO_ROOT
        assert root is not None
        env = {**os.environ, "PYTHONPATH": str(root)}
        if cell["threads"]:
            env["OMP_NUM_THREADS"] = str(cell["threads"])
        script = root / "benchmarks" / "bench_train.py"
        proc = subprocess.run(
            [sys.executable, str(script), "--cell", json.dumps(cell)], capture_output=True, text=True, env=env,
            cwd=root,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        threads = cell["threads"] or "-"
        label = f"{cell['code'][:8]:<8} {cell['preset']:<9} {cell['device']:<6} {cell['batch']:>5} {threads!s:>3}"
        if proc.returncode != 0 or not lines:
            err = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{label} {cell['ops']:<5} {cell['channels_last']!s:<7} {cell['amp']:<5} failed: {err}")
            results.append({**cell, "error": err})
            continue
        r = {**json.loads(lines[-1][len("RESULT "):]), "code": cell["code"]}
        base = first.setdefault(r["preset"], r["sec_per_kimg"])
        r["speedup_vs_first"] = base / r["sec_per_kimg"]
        results.append(r)
        print(f"{label} {r['ops']:<5} {r['channels_last']!s:<7} {r['amp']:<5} {r['sec_per_kimg']:>9.1f} "
              f"{r['cpu_sec_per_kimg']:>10.1f} {r['peak_mem_gib']:>9.2f} {r['speedup_vs_first']:>7.2f}x", flush=True)
    if baseline_dir is not None:
        subprocess.run(["git", "worktree", "remove", "--force", str(baseline_dir)], cwd=REPO_ROOT, check=False)

    doc = {
        "benchmark": "bench_train",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "baseline": args.baseline,
        "speedup_vs_first": "s/kimg of the preset's first cell / the cell's (with --baseline: vs REV in fp32)",
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
