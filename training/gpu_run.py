"""Train for a fixed wall time on one GPU with every speed option on, and export a compact result.

    python -m training.gpu_run --data fashion64.zip --cfg tiny64 --batch 256 --minutes 9 \\
        --outdir runs/ --export export/

Same options as `tryon train`, with defaults for a short GPU run: mixed precision (`--amp auto` =
fp16 blocks with clamping), channels_last, TF32, `--ops auto` (the fused CUDA kernels when they
build), the dataset decoded into GPU memory, no intermediate snapshots (`--snap 0`: only the final
one). The `--minutes` budget counts from the script's start — kernel build (ninja, first use on a
fresh machine), dataset decoding and setup included; training stops cleanly when it is spent and
snapshots (saving and the export take a few seconds more).

The export folder holds at most 8 files, each at most 16 MiB, so that it can be carried off the
machine: a checkpoint with G_ema and D (config.json, G_ema.safetensors, D.safetensors; loadable with
`tryon generate --checkpoint EXPORT`), samples.png, loss.png, log.jsonl, training_options.json and
summary.json (s/kimg, kimg reached, peak GPU memory, ops backends, device). A network that would not
fit in 16 MiB is refused before training starts.

It runs on the CPU too (for tests): `--device cpu --minutes 0.2`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tryon.errors import InputError

MAX_FILES = 8
MAX_FILE_BYTES = 16 << 20
EXPORT_NETWORKS = ("G_ema", "D")


def build_parser() -> argparse.ArgumentParser:
    from training.train import add_arguments

    parser = argparse.ArgumentParser(
        prog="python -m training.gpu_run",
        description="Train for a fixed wall time with all speed options; export <= 8 files of <= 16 MiB.",
    )
    parser.add_argument("--minutes", type=float, required=True, help="wall-time budget of the run (setup included)")
    parser.add_argument("--export", required=True, metavar="DIR", help="folder for the compact result")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and INFO logs")
    add_arguments(parser)
    parser.set_defaults(snap=0, keep=1, preload="on", progress=False, workers=4)
    return parser


def _param_bytes(kwargs: dict[str, Any], cls_name: str) -> int:
    from tryon.nn import Discriminator, Generator

    cls = Generator if cls_name == "Generator" else Discriminator
    module = cls(**kwargs)
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def warm_up_ops(device: Any, impl: str) -> float:
    """Build (or load from the cache) the compiled kernels before training; returns the seconds spent."""
    import time

    import torch

    import tryon.ops

    start = time.monotonic()
    x = torch.zeros([1, 4, 8, 8], device=device, requires_grad=True)
    with tryon.ops.use_impl(impl):
        y = tryon.ops.bias_act(x, torch.zeros([4], device=device), act="lrelu")
        y = tryon.ops.upsample2d(y, tryon.ops.setup_filter([1, 3, 3, 1], device=device))
        y.sum().backward()
    if torch.cuda.is_available() and torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.monotonic() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    import time

    import torch

    import tryon.ops
    from training import dist
    from training.loop import train
    from training.options import OPTIONS_FILE, resolve_options
    from training.runlog import LOG_FILE
    from training.snapshot import SAMPLES_FILE
    from tryon.checkpoint import load_checkpoint, save_checkpoint

    start_mono = time.monotonic()  # The --minutes budget covers everything from here on.
    if args.minutes <= 0:
        raise InputError(f"--minutes must be > 0, got {args.minutes}")
    args.max_minutes = args.minutes
    export = Path(args.export)
    if export.exists() and any(export.iterdir()):
        raise InputError(f"--export {export} exists and is not empty")
    info = dist.init_from_env(args.device)
    if info.world_size > 1:
        raise InputError("gpu_run trains on one GPU; use `tryon train` under torchrun for several")
    opts = resolve_options(args, world_size=1, device=info.device.type)
    for name, kwargs, cls_name in (("G_ema", opts.G_kwargs, "Generator"), ("D", opts.D_kwargs, "Discriminator")):
        size = _param_bytes(kwargs, cls_name)
        if size > MAX_FILE_BYTES:
            raise InputError(
                f"{name} would be {size / 2**20:.1f} MiB, over the {MAX_FILE_BYTES >> 20} MiB limit of one "
                "exported file; use a smaller --channel-max / --channel-base"
            )

    build_s = warm_up_ops(info.device, opts.ops)
    result = train(opts, info, start_mono=start_mono)
    snapshot = Path(result["snapshot"])
    run_dir = Path(result["run_dir"])

    ckpt = load_checkpoint(snapshot, names=EXPORT_NETWORKS)
    entries = ckpt.config["networks"]
    save_checkpoint(
        export,
        ckpt.networks,
        {
            "networks": {name: {"kwargs": entries[name]["kwargs"]} for name in EXPORT_NETWORKS},
            "label_schema": ckpt.label_schema,
            "training": ckpt.training,
        },
    )
    for src in (snapshot / SAMPLES_FILE, run_dir / "loss.png", run_dir / LOG_FILE, run_dir / OPTIONS_FILE):
        if src.is_file():
            shutil.copyfile(src, export / src.name)
    device_name = torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else platform.processor()
    summary = {
        **result,
        "export": str(export),
        "device_name": device_name or "cpu",
        "torch": torch.__version__,
        "amp": opts.amp,
        "channels_last": opts.channels_last,
        "tf32": opts.tf32,
        "ops": opts.ops,
        "ops_backends": tryon.ops.backends(),
        "kernel_build_s": build_s,
        "batch": opts.batch,
        "cfg": opts.cfg,
        "minutes": args.minutes,
    }
    (export / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    files = sorted(p for p in export.iterdir() if p.is_file())
    too_big = [f"{p.name} ({p.stat().st_size / 2**20:.1f} MiB)" for p in files if p.stat().st_size > MAX_FILE_BYTES]
    if len(files) > MAX_FILES or too_big:
        raise RuntimeError(f"export has {len(files)} files (max {MAX_FILES}); too big: {', '.join(too_big) or 'none'}")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        summary = run(args)
    except Exception as exc:
        if args.verbose:
            raise
        print(f"gpu_run: error: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
        return 1
    sec = summary["sec_per_kimg"]
    print(
        f"gpu_run: {summary['kimg']:.3f} kimg in {summary['train_seconds']:.0f} s "
        f"({sec:.2f} s/kimg) on {summary['device_name']}, batch {summary['batch']}, amp {summary['amp']}, "
        f"peak memory {summary['peak_mem_gib']:.2f} GiB, stopped by {summary['stopped_by']}; "
        f"export: {summary['export']}"
        if sec is not None
        else f"gpu_run: no training step fitted in --minutes; export: {summary['export']}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
