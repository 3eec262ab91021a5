"""Serving precision: the shipped fashion generator rendering in fp32 vs bf16 (its fp16 blocks in bfloat16,
TRYON_PRECISION), with `ref`, compiled `cpp` and `auto` (the service's per-op choice) ops, at batch 1 and 8:
speed, and how far the pixels move.

The configurations run interleaved in one process, round after round (A B C D, A B C D, ...), and each
reports its median, so that a noisy machine slows all of them alike and the ratios stay meaningful.
Prints a table and writes JSON to benchmarks/results/bench_precision.json.

    python benchmarks/bench_precision.py                          # 1 thread, batch 1 and 8, 15 rounds
    python benchmarks/bench_precision.py --threads 2 --batches 1 8 32 --rounds 25
    python benchmarks/bench_precision.py --impls ref auto inductor --out benchmarks/results/bench_precision_compile.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="fashion checkpoint (default: the shipped one)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--impls", nargs="+", default=["ref", "auto", "cpp"],
                        choices=["auto", "ref", "cpp", "inductor"],
                        help="inductor = torch.compile(G.synthesis) over the ref ops (not in the default run)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quality-images", type=int, default=64, help="images compared fp32 vs bf16 (PSNR)")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_precision.json")
    args = parser.parse_args()

    import numpy as np
    import torch

    from tryon import ops
    from tryon.fashion import FashionPipeline
    from tryon.nn import cpu_supports_bf16

    torch.set_num_threads(args.threads)
    pipe = FashionPipeline.from_checkpoint(args.checkpoint, precision="fp32")
    G = pipe.G
    gen = torch.Generator().manual_seed(0)

    def latents(n: int) -> torch.Tensor:
        z = torch.randn([n, int(G.z_dim)], generator=gen)
        c = torch.nn.functional.one_hot(torch.arange(n) % max(int(G.c_dim), 1), max(int(G.c_dim), 1)).float()
        with torch.no_grad():
            return G.mapping(z, c[:, : int(G.c_dim)] if G.c_dim else None)

    cells = list(itertools.product(args.batches, args.impls, ["fp32", "bf16"]))
    inputs = {b: latents(b) for b in args.batches}
    times: dict[tuple[int, str, str], list[float]] = {cell: [] for cell in cells}

    compiled = None
    if "inductor" in args.impls:
        import torch._dynamo

        # Each resolution's blocks share one forward with other shapes: allow a graph per block, batch and
        # precision instead of falling back to eager after 8.
        torch._dynamo.config.recompile_limit = 256
        torch._dynamo.config.accumulated_recompile_limit = 4096
        compiled = torch.compile(G.synthesis, dynamic=False)

    def run(cell: tuple[int, str, str]) -> float:
        batch, impl, precision = cell
        half = torch.bfloat16 if precision == "bf16" else None
        synthesis = compiled if impl == "inductor" else G.synthesis
        assert synthesis is not None
        with torch.no_grad(), ops.use_impl("ref" if impl == "inductor" else impl):
            t0 = time.perf_counter()
            synthesis(inputs[batch], noise_mode="const", half_dtype=half)
            return time.perf_counter() - t0

    for cell in cells:  # Warm-up (and the compiled ops' build / load).
        run(cell)
    for _ in range(args.rounds):
        for cell in cells:
            times[cell].append(run(cell))

    # Quality: the same latents rendered both ways through the pipeline (uint8, as served).
    ws = latents(args.quality_images)
    a = np.stack(pipe.render(ws)).astype(np.float64)
    pipe.precision = "bf16"
    b = np.stack(pipe.render(ws)).astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    quality = dict(images=args.quality_images, psnr_db=10 * np.log10(255**2 / max(mse, 1e-12)),
                   mean_abs_diff=float(np.mean(np.abs(a - b))), max_abs_diff=float(np.max(np.abs(a - b))))

    rows = []
    base_of = {b: statistics.median(times[(b, "ref", "fp32")]) / b for b in args.batches if "ref" in args.impls}
    base1 = base_of.get(args.batches[0])
    print(f"{'batch':>5} {'impl':>4} {'prec':>5} {'img/s':>8} {'ms/batch':>9} {'vs ref fp32':>11} "
          f"{'vs ref fp32 b' + str(args.batches[0]):>14}")
    for cell in cells:
        batch, impl, precision = cell
        med = statistics.median(times[cell])
        row = dict(batch=batch, impl=impl, precision=precision, images_per_s=batch / med, ms_per_batch=med * 1e3,
                   min_ms=min(times[cell]) * 1e3, max_ms=max(times[cell]) * 1e3, rounds=args.rounds)
        if batch in base_of:
            row["speedup_vs_ref_fp32"] = base_of[batch] / (med / batch)
        if base1 is not None:
            row["speedup_vs_ref_fp32_first_batch"] = base1 / (med / batch)
        rows.append(row)
        print(f"{batch:>5} {impl:>4} {precision:>5} {row['images_per_s']:>8.1f} {row['ms_per_batch']:>9.1f} "
              f"{row.get('speedup_vs_ref_fp32', float('nan')):>10.2f}x "
              f"{row.get('speedup_vs_ref_fp32_first_batch', float('nan')):>13.2f}x")
    print(f"bf16 vs fp32 over {quality['images']} images: PSNR {quality['psnr_db']:.1f} dB, "
          f"mean |diff| {quality['mean_abs_diff']:.2f}, max {quality['max_abs_diff']:.0f} grey levels")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(machine=platform.machine(), python=platform.python_version(), torch=torch.__version__,
                threads=args.threads, cpu_supports_bf16=cpu_supports_bf16(),
                checkpoint=args.checkpoint or "tryon/assets/fashion",
                command=" ".join(["python", "benchmarks/bench_precision.py", *sys.argv[1:]]))
    args.out.write_text(json.dumps(dict(meta=meta, rows=rows, quality=quality), indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
