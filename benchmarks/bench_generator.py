"""Generator forward throughput: images/s and ms/batch at several batch sizes, `ref` vs compiled ops.

Each (resolution, impl, batch) cell runs in its own subprocess so that its peak memory (RSS on CPU,
max allocated on CUDA) is its own. Prints a table (with the compiled/ref speed ratio) and writes
JSON to benchmarks/results/bench_generator.json.

    python benchmarks/bench_generator.py                       # CPU: ref vs cpp, 64², batch 1 8 32
    python benchmarks/bench_generator.py --res 64 128 --device cuda --impls ref cuda --batches 1 8 64
    python benchmarks/bench_generator.py --precisions fp32 bf16 --impls ref cpp   # CPU: bf16 fp16-blocks
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# A serving-sized conditional generator per resolution (NVlabs' auto config scaled down for CPU).
CONFIGS: dict[int, dict[str, Any]] = {
    64: dict(z_dim=256, w_dim=256, c_dim=32, map=2, channel_base=8192, channel_max=256),
    128: dict(z_dim=256, w_dim=256, c_dim=32, map=2, channel_base=16384, channel_max=256),
    256: dict(z_dim=512, w_dim=512, c_dim=32, map=2, channel_base=16384, channel_max=512),
}


def run_cell(
    res: int, impl: str, batch: int, device: str, repeats: int, amp: bool, channels_last: bool, modconv: str,
    precision: str = "fp32",
) -> dict:
    import torch

    from tryon import ops
    from tryon.nn import Generator

    cfg = CONFIGS[res]
    torch.manual_seed(0)
    G = Generator(
        z_dim=cfg["z_dim"], c_dim=cfg["c_dim"], w_dim=cfg["w_dim"], img_resolution=res, img_channels=3,
        mapping_kwargs={"num_layers": cfg["map"]},
        synthesis_kwargs={"channel_base": cfg["channel_base"], "channel_max": cfg["channel_max"], "conv_clamp": 256,
                          "num_fp16_res": 4 if amp or precision == "bf16" else 0,
                          "fp16_channels_last": channels_last},
    ).eval().requires_grad_(False).to(device)
    z = torch.randn([batch, cfg["z_dim"]], device=device)
    c = torch.nn.functional.one_hot(torch.arange(batch) % cfg["c_dim"], cfg["c_dim"]).float().to(device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    kwargs: dict[str, Any] = {"noise_mode": "const"}
    if precision == "bf16":  # The 4 highest resolutions in bf16, as the service's TRYON_PRECISION=bf16.
        kwargs["half_dtype"] = torch.bfloat16
    if modconv != "auto":
        kwargs["fused_modconv"] = modconv == "fused"
    times = []
    with torch.no_grad(), ops.use_impl(impl):
        G(z, c, **kwargs)  # Warm-up (and the compiled kernels' build / load).
        sync()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(repeats):
            t0 = time.perf_counter()
            G(z, c, **kwargs)
            sync()
            times.append(time.perf_counter() - t0)
    backends = ops.backends()
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = statistics.median(times)
    return dict(
        res=res, impl=impl, batch=batch, device=device, amp=amp, precision=precision, channels_last=channels_last,
        modconv=modconv,
        ms_per_batch=med * 1e3, images_per_s=batch / med, min_ms=min(times) * 1e3, max_ms=max(times) * 1e3,
        repeats=repeats, peak_mb=peak_mb, backends=backends,
        params_m=sum(p.numel() for p in G.parameters()) / 1e6,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", type=int, nargs="+", default=[64], choices=sorted(CONFIGS))
    parser.add_argument("--impls", nargs="+", default=None, help="default: ref + the device's compiled kernels")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--amp", action="store_true", help="fp16 in the 4 highest resolutions (CUDA only)")
    parser.add_argument("--channels-last", action="store_true", help="channels_last in fp16 layers (CUDA only)")
    parser.add_argument("--modconv", nargs="+", default=["auto"], choices=["auto", "fused", "unfused"],
                        help="modulated conv formulation (auto = the network's default for the device and batch)")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                        help="bf16: the 4 highest resolutions' blocks in bfloat16 (CPU with bf16 instructions)")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_generator.json")
    parser.add_argument("--cell", help=argparse.SUPPRESS)  # Internal: run one cell, print JSON.
    args = parser.parse_args()

    if args.cell:
        res, impl, batch, modconv, precision = args.cell.split(",")
        out = run_cell(int(res), impl, int(batch), args.device, args.repeats, args.amp, args.channels_last, modconv,
                       precision)
        print(json.dumps(out))
        return 0

    impls = args.impls or ["ref", "cuda" if args.device == "cuda" else "cpp"]
    rows = []
    for res in args.res:
        for batch in args.batches:
            for impl, modconv, precision in itertools.product(impls, args.modconv, args.precisions):
                cmd = [sys.executable, __file__, "--cell", f"{res},{impl},{batch},{modconv},{precision}",
                       "--device", args.device, "--repeats", str(args.repeats)]
                cmd += ["--amp"] if args.amp else []
                cmd += ["--channels-last"] if args.channels_last else []
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    err = (proc.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"res {res} impl {impl} batch {batch} {modconv}: FAILED: {err}", file=sys.stderr)
                    rows.append(dict(res=res, impl=impl, batch=batch, modconv=modconv, error=err))
                    continue
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    ok = [r for r in rows if "error" not in r]
    # The baseline of every row: ref ops with the first --modconv and --precisions settings, same
    # resolution and batch.
    ref = {(r["res"], r["batch"]): r for r in ok
           if r["impl"] == "ref" and r["modconv"] == args.modconv[0] and r["precision"] == args.precisions[0]}
    print(f"{'res':>4} {'batch':>5} {'impl':>5} {'modconv':>8} {'prec':>5} {'img/s':>9} {'ms/batch':>9} {'peak MB':>8} "
          f"{'vs base':>7}  backends")
    for r in ok:
        base = ref.get((r["res"], r["batch"]))
        ratio = r["images_per_s"] / base["images_per_s"] if base else float("nan")
        r["speedup_vs_ref"] = ratio
        used = ",".join(sorted(set(r["backends"].values()))) or "-"
        print(f"{r['res']:>4} {r['batch']:>5} {r['impl']:>5} {r['modconv']:>8} {r['precision']:>5} "
              f"{r['images_per_s']:>9.1f} "
              f"{r['ms_per_batch']:>9.1f} "
              f"{r['peak_mb']:>8.0f} {ratio:>6.2f}x  {used}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(machine=platform.machine(), python=platform.python_version(), device=args.device,
                configs={str(k): v for k, v in CONFIGS.items() if k in args.res})
    args.out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
