"""Speed of the compiled `tryon.ops` kernels against the plain-PyTorch reference.

Times bias_act (lrelu with bias and clamp, as in every StyleGAN2 conv layer) and upfirdn2d
(upsample2d / downsample2d with the [1, 3, 3, 1] filter) on StyleGAN-sized tensors, forward and
forward + backward: "cpp" against "ref" on the CPU, and "cuda" against "ref" when a GPU is present.
The implementations are timed in alternation (one call each per round), so that a machine whose load
changes during the run slows them alike; each number is the median over the rounds.

    python benchmarks/bench_ops.py [--repeats 15] [--device cpu|cuda|all]

Prints a table and writes benchmarks/results/bench_ops.json. The first run builds the kernels
(about a minute, cached afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tryon.ops import bias_act, downsample2d, setup_filter, upsample2d

RESULTS = Path(__file__).resolve().parent / "results" / "bench_ops.json"
SHAPES = ([8, 64, 64, 64], [8, 256, 16, 16])


@dataclass
class Row:
    op: str  # What was timed.
    shape: list[int]  # Input shape [N, C, H, W].
    device: str  # "cpu" or "cuda".
    mode: str  # "forward" or "forward+backward".
    impl: str  # The compiled implementation compared with "ref".
    ref_ms: float  # Median time of impl="ref", milliseconds.
    impl_ms: float  # Median time of the compiled implementation, milliseconds.

    @property
    def speedup(self) -> float:
        return self.ref_ms / self.impl_ms


def _op(name: str, x: torch.Tensor, b: torch.Tensor, f: torch.Tensor, impl: str) -> torch.Tensor:
    if name == "bias_act":
        return bias_act(x, b, act="lrelu", clamp=256.0, impl=impl)
    if name == "upsample2d":
        return upsample2d(x, f, impl=impl)
    return downsample2d(x, f, impl=impl)


def _timer(device: str) -> Callable[[Callable[[], object]], float]:
    def run(fn: Callable[[], object]) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1e3

    return run


def _make_call(
    op: str, x: torch.Tensor, b: torch.Tensor, f: torch.Tensor, impl: str, mode: str
) -> Callable[[], object]:
    """One timed call: the op alone (no autograd), or the op and its gradients for a fixed dy."""
    if mode == "forward":

        def forward() -> object:
            with torch.no_grad():
                return _op(op, x, b, f, impl)

        return forward
    xg = x.clone().requires_grad_(True)
    bg = b.clone().requires_grad_(True)
    inputs = [xg, bg] if op == "bias_act" else [xg]
    dy = torch.randn_like(_op(op, x, b, f, "ref"))

    def forward_backward() -> object:
        return torch.autograd.grad(_op(op, xg, bg, f, impl), inputs, dy)

    return forward_backward


def bench_case(op: str, shape: list[int], device: str, mode: str, impl: str, repeats: int) -> Row:
    """Median milliseconds of `ref` and `impl` for one op, shape and mode."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(device)
    b = torch.randn(shape[1], generator=gen).to(device)
    f = setup_filter([1, 3, 3, 1], device=device)
    timer = _timer(device)
    calls = {name: _make_call(op, x, b, f, name, mode) for name in ("ref", impl)}
    for call in calls.values():  # Warm-up (and the build, on first use).
        call()
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(timer(call))
    return Row(op, shape, device, mode, impl, statistics.median(times["ref"]), statistics.median(times[impl]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds per case (median is reported)")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all", help="where to run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    devices = []
    if args.device in ("cpu", "all"):
        devices.append("cpu")
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append("cuda")
    if args.device == "cuda" and not devices:
        parser.error("no CUDA GPU available")

    rows: list[Row] = []
    print(f"{'op':<11} {'shape':<16} {'device':<6} {'mode':<17} {'ref ms':>9} {'impl':>5} {'impl ms':>9} {'ratio':>6}")
    for device in devices:
        impl = "cpp" if device == "cpu" else "cuda"
        for op in ("bias_act", "upsample2d", "downsample2d"):
            for shape in SHAPES:
                for mode in ("forward", "forward+backward"):
                    row = bench_case(op, list(shape), device, mode, impl, args.repeats)
                    rows.append(row)
                    print(
                        f"{op:<11} {'x'.join(map(str, shape)):<16} {device:<6} {mode:<17} {row.ref_ms:9.3f} "
                        f"{impl:>5} {row.impl_ms:9.3f} {row.speedup:5.2f}x",
                        flush=True,
                    )

    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "gpu": torch.cuda.get_device_name() if "cuda" in devices else None,
        "repeats": args.repeats,
        "ratio": "ref_ms / impl_ms (> 1: the compiled kernel is faster)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = [asdict(r) | {"speedup": round(r.speedup, 3)} for r in rows]
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
