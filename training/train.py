"""`tryon train`: train a conditional StyleGAN2 (with ADA) on a dataset zip.

    tryon train --data fashion64.zip --outdir runs/ --cfg tiny64 --batch 32 --kimg 500
    tryon train --data fashion64.zip --outdir runs/ --cfg tiny64 --batch 32 --dry-run
    tryon train --data fashion64.zip --outdir runs/ --cfg tiny64 --batch 32 --resume runs/00003-fashion64-tiny64-b32
    torchrun --nproc_per_node 2 -m training.train --data fashion64.zip --outdir runs/ --cfg tiny64 --batch 64

Presets (`PRESETS`) fix the resolution and the architecture; every value can be overridden. The
resolved options — one record, `TrainingOptions` (both in training/options.py) — are printed by
`--dry-run` and written to `training_options.json` in the run folder. Under torchrun every process
runs this same entry point; the batch is split over processes (DistributedDataParallel; NCCL on GPUs,
gloo on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from training.options import AMP_MODES, AUG_MODES, OPS_IMPLS, PRELOAD_MODES, PRESETS, resolve_options

# ----------------------------------------------------------------------------------------------------
# Command line.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tryon train` (also `python -m training.train` and `training.gpu_run`)."""
    bool_action = argparse.BooleanOptionalAction
    g = parser.add_argument_group("run")
    g.add_argument("--data", required=True, metavar="ZIP", help="dataset zip (NVlabs layout, see `tryon dataset`)")
    g.add_argument("--outdir", required=True, metavar="DIR", help="where run folders are created")
    g.add_argument("--cfg", choices=sorted(PRESETS), default="tiny64", help="preset (default tiny64)")
    g.add_argument("--batch", type=int, metavar="N", help="global batch size (default: the preset's)")
    g.add_argument("--batch-gpu", type=int, metavar="N", help="images per forward pass per process (accumulate)")
    g.add_argument("--kimg", type=float, metavar="K", help="train for K thousand images (default: the preset's)")
    g.add_argument(
        "--max-minutes", type=float, metavar="M",
        help="stop cleanly and snapshot after M minutes of wall time (setup included; saving takes seconds more)",
    )
    g.add_argument("--resume", metavar="RUN_OR_SNAPSHOT", help="continue from a snapshot (or a run's latest)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument(
        "--cond", action=bool_action, default=None, help="condition on labels (default: if the data has them)"
    )
    g.add_argument("--mirror", action=bool_action, default=False, help="add x-flipped copies of the images")
    g.add_argument("--dry-run", action="store_true", help="print the resolved options and exit")
    g = parser.add_argument_group("networks and losses (override the preset)")
    g.add_argument("--z-dim", type=int, metavar="N")
    g.add_argument("--w-dim", type=int, metavar="N")
    g.add_argument("--map", type=int, metavar="N", help="mapping network layers")
    g.add_argument("--channel-base", type=int, metavar="N")
    g.add_argument("--channel-max", type=int, metavar="N")
    g.add_argument("--fp16-res", type=int, metavar="N", help="number of fp16 resolutions (mixed precision)")
    g.add_argument("--mbstd-group", type=int, metavar="N", help="minibatch-stddev group size")
    g.add_argument("--gamma", type=float, metavar="G", help="R1 weight (default: the preset's / auto)")
    g.add_argument("--lr", type=float, metavar="LR", help="learning rate of G and D")
    g.add_argument("--glr", type=float, metavar="LR", help="learning rate of G (overrides --lr)")
    g.add_argument("--dlr", type=float, metavar="LR", help="learning rate of D (overrides --lr)")
    g.add_argument("--pl-weight", type=float, metavar="W", help="path-length weight (0 = off)")
    g.add_argument("--style-mixing", type=float, metavar="P", help="style-mixing probability")
    g.add_argument("--ema-kimg", type=float, metavar="K", help="G EMA half-life in kimg")
    g.add_argument("--ema-rampup", type=float, metavar="R", help="EMA ramp-up ratio (negative = off)")
    g.add_argument("--g-reg-interval", type=int, default=4, metavar="N", help="lazy path-length interval (4)")
    g.add_argument("--d-reg-interval", type=int, default=16, metavar="N", help="lazy R1 interval (16)")
    g = parser.add_argument_group("augmentation")
    g.add_argument("--aug", choices=AUG_MODES, default="ada", help="ada (default), fixed p, or none")
    g.add_argument("--augpipe", default="bgc", help="named pipeline (default bgc)")
    g.add_argument("--p", type=float, default=0.0, help="initial (ada) or fixed (fixed) probability")
    g.add_argument("--target", type=float, default=0.6, help="ADA target for E[sign(D(real))] (0.6)")
    g.add_argument("--ada-interval", type=int, default=4, metavar="N", help="adjust p every N steps (4)")
    g.add_argument("--ada-kimg", type=float, metavar="K", help="p can change by 1 within K kimg")
    g = parser.add_argument_group("speed")
    g.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if available")
    g.add_argument(
        "--amp", choices=AMP_MODES, default="auto",
        help="mixed precision (auto: fp16 on CUDA, bf16 on CPUs with bf16 instructions, else off); "
        "it does not change what a snapshot holds: a run can be resumed with another --amp",
    )
    g.add_argument("--channels-last", action=bool_action, default=None, help="channels_last (default: on with CUDA)")
    g.add_argument("--tf32", action=bool_action, default=True, help="allow TF32 on CUDA (default on)")
    g.add_argument("--ops", choices=OPS_IMPLS, default="auto", help="custom op implementation (default auto)")
    g.add_argument("--workers", type=int, default=2, metavar="N", help="data loader processes (default 2)")
    g.add_argument("--preload", choices=PRELOAD_MODES, default="auto", help="decode all images into memory first")
    g = parser.add_argument_group("logging")
    g.add_argument("--tick", type=float, metavar="KIMG", help="log a progress line every KIMG (default: preset)")
    g.add_argument("--snap", type=int, metavar="TICKS", help="snapshot every N ticks (default: preset)")
    g.add_argument("--keep", type=int, default=0, metavar="N", help="keep only the last N snapshots (0 = all)")
    g.add_argument("--grid-cols", type=int, default=8, metavar="N", help="sample grid: seeds per row (8)")
    g.add_argument("--grid-rows", type=int, default=8, metavar="N", help="sample grid: label combinations (8)")
    g.add_argument("--metrics", default="fd,kid,pr,cond_acc", help="metrics to compute (comma-separated)")
    g.add_argument("--metrics-every", type=int, metavar="TICKS", help="compute metrics every N ticks (off)")
    g.add_argument("--metrics-num-gen", type=int, default=2000, metavar="N", help="generated images per metric")
    g.add_argument("--feature-net", metavar="DIR", help="feature network checkpoint for the metrics")
    g.add_argument("--progress", action=bool_action, default=None, help="progress bar (default: on a terminal)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a conditional StyleGAN2 (ADA) on a dataset zip",
        description=(
            "Train a conditional StyleGAN2 with ADA. Presets: "
            + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
            + ". Under torchrun, every process runs this command (DistributedDataParallel)."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=run_train_cli)


def run_train_cli(args: argparse.Namespace) -> int:
    from training import dist

    info = dist.init_from_env(args.device)
    try:
        opts = resolve_options(args, world_size=info.world_size, device=info.device.type)
        if args.dry_run:
            if info.is_main:
                print(json.dumps(opts.to_json(), indent=2))
            return 0
        from training.loop import train

        result = train(opts, info)
        if info.is_main:
            print(json.dumps(result, indent=2))
        # Tear the group down only once every process is done with it (not on a failure: the others
        # may be waiting in another collective then, and torchrun stops them anyway).
        dist.barrier()
        return 0
    finally:
        dist.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m training.train ...` (e.g. under torchrun): the same options as `tryon train`."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description="Train a conditional StyleGAN2.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and INFO logs")
    add_arguments(parser)
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return run_train_cli(args)
    except Exception as exc:
        if args.verbose:
            raise
        text = " ".join(str(exc).split()) or type(exc).__name__
        rank = os.environ.get("RANK")
        print(f"train{f' (rank {rank})' if rank else ''}: error: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
