"""The options of a training run: the presets, the one resolved record (`TrainingOptions`) and how the
command line, a preset and the dataset resolve into it (`resolve_options`).

The record is printed by `tryon train --dry-run` and written to the run folder as `OPTIONS_FILE`.
The command line itself is in training/train.py; the loop (training/loop.py) reads only the record.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from tryon.errors import InputError

# ----------------------------------------------------------------------------------------------------
# Presets.


@dataclasses.dataclass(frozen=True)
class Preset:
    """Architecture and hyperparameters of one training configuration."""

    name: str
    description: str
    resolution: int                 # Image resolution the preset trains at (the dataset must match).
    z_dim: int                      # Latent (Z) dimensionality.
    w_dim: int                      # Intermediate latent (W) dimensionality.
    map_layers: int                 # Mapping network depth of G.
    channel_base: int               # Channels at resolution r: min(channel_base // r, channel_max).
    channel_max: int                # Maximum number of channels.
    num_fp16_res: int               # The N highest resolutions run in fp16 on CUDA (mixed precision).
    conv_clamp: float | None        # Clamp conv outputs to +-X (keeps fp16 in range).
    mbstd_group: int                # Minibatch-stddev group size of D.
    batch: int                      # Default global batch size.
    cpu_batch: int | None           # Default batch on the CPU (None = batch); see benchmarks/bench_recipes.py.
    lr: float                       # Learning rate of G and D.
    gamma: float | None             # R1 weight; None = auto: 0.0002 * res^2 / batch (NVlabs).
    ema_kimg: float | None          # G EMA half-life in kimg; None = batch * 10 / 32 (NVlabs auto).
    ema_rampup: float | None        # EMA ramp-up (half-life <= rampup * images seen), None = off.
    style_mixing: float             # Style-mixing probability.
    pl_weight: float                # Path-length regularisation weight.
    ada_kimg: float                 # ADA: p can change by 1 within this many kimg.
    kimg: float                     # Default training length in kimg.
    tick_kimg: float                # Progress tick (log line, stats) every this many kimg.
    snap_ticks: int                 # Snapshot (weights + sample grid) every this many ticks.


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="tiny64", description="64x64, narrow channels: trains on a CPU in hours, on a GPU in minutes",
            resolution=64, z_dim=128, w_dim=128, map_layers=2, channel_base=4096, channel_max=128,
            num_fp16_res=4, conv_clamp=256, mbstd_group=4, batch=32, cpu_batch=8, lr=0.0025, gamma=None,
            ema_kimg=None, ema_rampup=0.05, style_mixing=0.9, pl_weight=2, ada_kimg=100, kimg=1000, tick_kimg=4,
            snap_ticks=25,
        ),
        Preset(
            name="small128", description="128x128, narrower than NVlabs' auto (G and D under 16 MiB each)",
            resolution=128, z_dim=256, w_dim=256, map_layers=4, channel_base=8192, channel_max=192,
            num_fp16_res=4, conv_clamp=256, mbstd_group=4, batch=32, cpu_batch=None, lr=0.0025, gamma=None,
            ema_kimg=None, ema_rampup=0.05, style_mixing=0.9, pl_weight=2, ada_kimg=100, kimg=5000, tick_kimg=4,
            snap_ticks=50,
        ),
        Preset(
            name="paper256", description="256x256, NVlabs' 'paper256' configuration",
            resolution=256, z_dim=512, w_dim=512, map_layers=8, channel_base=16384, channel_max=512,
            num_fp16_res=4, conv_clamp=256, mbstd_group=8, batch=64, cpu_batch=None, lr=0.0025, gamma=1,
            ema_kimg=20, ema_rampup=None, style_mixing=0.9, pl_weight=2, ada_kimg=500, kimg=25000, tick_kimg=4,
            snap_ticks=50,
        ),
    )
}

AUG_MODES = ("ada", "fixed", "noaug")
AMP_MODES = ("auto", "fp16", "bf16", "off")
OPS_IMPLS = ("auto", "ref", "cuda", "cpp")
PRELOAD_MODES = ("auto", "on", "off")
OPTIONS_FILE = "training_options.json"


@dataclasses.dataclass
class TrainingOptions:
    """Every option of a training run, resolved (presets + overrides + dataset), JSON-serialisable."""

    # Data.
    data: str                       # Dataset zip.
    dataset_name: str               # Its file name without suffix.
    dataset_size: int               # Number of images (x2 with mirror).
    resolution: int                 # Image resolution.
    img_channels: int               # Image channels.
    c_dim: int                      # Label dimensionality used (0 = unconditional).
    mirror: bool                    # Add x-flipped copies of the images.
    # Run.
    cfg: str                        # Preset name.
    outdir: str                     # Parent of the run folder.
    run_dir: str | None             # The run folder (set when the run starts).
    seed: int                       # All randomness derives from this.
    kimg: float                     # Stop after this many thousand images shown to D.
    max_minutes: float | None       # Or after this much wall time (then snapshot and stop).
    resume: str | None              # Snapshot or run folder to resume from.
    batch: int                      # Global batch size (all processes).
    batch_gpu: int                  # Images per forward pass on one process (accumulates up to batch).
    world_size: int                 # Number of processes.
    # Networks (constructor kwargs, recorded in every checkpoint).
    G_kwargs: dict[str, Any]
    D_kwargs: dict[str, Any]
    # Optimisation.
    glr: float
    dlr: float
    betas: tuple[float, float]
    eps: float
    gamma: float                    # R1 weight.
    pl_weight: float                # Path-length weight (0 = off).
    pl_batch_shrink: int
    pl_decay: float
    style_mixing: float
    G_reg_interval: int             # Lazy path-length regularisation interval.
    D_reg_interval: int             # Lazy R1 interval.
    ema_kimg: float                 # G EMA half-life.
    ema_rampup: float | None
    # Augmentation.
    aug: str                        # "ada" (adaptive p), "fixed" (p = aug_p), "noaug".
    augpipe: str                    # Named pipeline (training.augment.AUGPIPES).
    aug_p: float                    # Initial (ada) or fixed p.
    ada_target: float
    ada_interval: int
    ada_kimg: float
    # Speed.
    device: str                     # "cpu" or "cuda".
    amp: str                        # "fp16" (fp16 blocks + clamping), "bf16" (CUDA: autocast; CPU: the
                                    # fp16 blocks in bf16) or "off".
    channels_last: bool             # channels_last memory format in the fp16 blocks.
    tf32: bool                      # TF32 matmuls / convs on Ampere+.
    ops: str                        # Custom op implementation (tryon.ops.use_impl).
    workers: int                    # Data loader processes.
    preload: str                    # Decode the whole dataset into memory first: auto / on / off.
    # Logging.
    tick_kimg: float
    snap_ticks: int
    keep_snapshots: int             # Keep only the last N snapshots (0 = all).
    grid_cols: int                  # Sample grid: fixed seeds per row.
    grid_rows: int                  # Sample grid: label combinations (rows).
    metrics: list[str]
    metrics_every: int | None       # Compute metrics every N ticks (needs feature_net).
    metrics_num_gen: int
    feature_net: str | None         # Feature network checkpoint for the metrics.
    progress: bool                  # Show a progress bar.

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


# ----------------------------------------------------------------------------------------------------
# Resolving the options.


def _dataset_info(path: str, mirror: bool) -> dict[str, Any]:
    from training.data import open_dataset

    ds = open_dataset(path, mirror=mirror)
    return {
        "size": len(ds),
        "resolution": int(ds.resolution),
        "channels": int(ds.num_channels),
        "label_dim": int(ds.label_dim),
    }


def resolve_options(
    args: argparse.Namespace,
    world_size: int = 1,
    device: str = "cpu",
    dataset_info: dict[str, Any] | None = None,
) -> TrainingOptions:
    """Presets + command line + dataset -> TrainingOptions; raises InputError for unusable input."""
    preset = PRESETS[args.cfg]
    if dataset_info is None:
        dataset_info = _dataset_info(args.data, args.mirror)
    res = dataset_info["resolution"]
    if res != preset.resolution:
        raise InputError(
            f"{args.data} holds {res}x{res} images but --cfg {preset.name} trains at "
            f"{preset.resolution}x{preset.resolution}; pick a preset for {res} or rebuild the dataset"
        )
    if dataset_info["size"] == 0:
        raise InputError(f"{args.data} holds no images")
    label_dim = dataset_info["label_dim"]
    cond = args.cond if args.cond is not None else label_dim > 0
    if cond and label_dim == 0:
        raise InputError(f"--cond: {args.data} has no labels (no dataset.json labels)")
    c_dim = label_dim if cond else 0

    # On the CPU tiny64 defaults to batch 8: at an equal budget of CPU minutes it reached FD 4.4 where batch
    # 16 reached 8.0 (twice the G and D updates per image; benchmarks/bench_recipes.py).
    default_batch = preset.cpu_batch if device == "cpu" and preset.cpu_batch is not None else preset.batch
    batch = args.batch if args.batch is not None else default_batch
    if batch < 1:
        raise InputError(f"--batch must be >= 1, got {batch}")
    if batch % world_size != 0:
        raise InputError(f"--batch {batch} is not divisible by the number of processes ({world_size})")
    per_process = batch // world_size
    batch_gpu = args.batch_gpu if args.batch_gpu is not None else per_process
    if batch_gpu < 1 or per_process % batch_gpu != 0:
        raise InputError(
            f"--batch-gpu {batch_gpu} must divide the per-process batch {per_process} (--batch {batch} over "
            f"{world_size} processes)"
        )
    mbstd_group = args.mbstd_group if args.mbstd_group is not None else preset.mbstd_group
    if mbstd_group < 1:
        raise InputError(f"--mbstd-group must be >= 1, got {mbstd_group}")
    group = min(mbstd_group, batch_gpu)
    if batch_gpu % group != 0:
        raise InputError(
            f"the per-pass batch {batch_gpu} is not a multiple of the minibatch-stddev group {group}; "
            f"choose --batch / --batch-gpu as multiples of {group} or set --mbstd-group"
        )

    amp = args.amp
    if amp == "auto":
        from tryon.nn.misc import cpu_supports_bf16

        amp = "fp16" if device == "cuda" else ("bf16" if cpu_supports_bf16() else "off")
    if amp == "fp16" and device != "cuda":
        raise InputError("--amp fp16 needs a CUDA device (on the CPU use --amp bf16)")
    channels_last = args.channels_last if args.channels_last is not None else device == "cuda"
    if args.ops == "cuda" and device != "cuda":
        raise InputError("--ops cuda needs --device cuda")
    if args.augpipe not in _augpipes():
        raise InputError(f"unknown --augpipe {args.augpipe!r}; choose one of {', '.join(_augpipes())}")
    if args.aug == "fixed" and not 0 <= args.p <= 1:
        raise InputError(f"--p must be in [0, 1], got {args.p}")
    if args.g_reg_interval < 1 or args.d_reg_interval < 1:
        raise InputError("--g-reg-interval and --d-reg-interval must be >= 1")
    if args.ada_interval < 1:
        raise InputError("--ada-interval must be >= 1")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if args.metrics_every is not None and args.feature_net is None:
        raise InputError("--metrics-every needs --feature-net DIR (the feature network the metrics use)")
    kimg = args.kimg if args.kimg is not None else preset.kimg
    if kimg <= 0:
        raise InputError(f"--kimg must be > 0, got {kimg}")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise InputError(f"--max-minutes must be > 0, got {args.max_minutes}")

    # The fp16 blocks are part of the architecture (as in NVlabs' checkpoints); whether they run in
    # fp16 is decided per call (`force_fp32`), so --amp does not change the recorded kwargs.
    num_fp16_res = args.fp16_res if args.fp16_res is not None else preset.num_fp16_res
    channel_base = args.channel_base if args.channel_base is not None else preset.channel_base
    channel_max = args.channel_max if args.channel_max is not None else preset.channel_max
    z_dim = args.z_dim if args.z_dim is not None else preset.z_dim
    w_dim = args.w_dim if args.w_dim is not None else preset.w_dim
    map_layers = args.map if args.map is not None else preset.map_layers
    G_kwargs = {
        "z_dim": z_dim,
        "c_dim": c_dim,
        "w_dim": w_dim,
        "img_resolution": res,
        "img_channels": dataset_info["channels"],
        "mapping_kwargs": {"num_layers": map_layers},
        "synthesis_kwargs": {
            "channel_base": channel_base,
            "channel_max": channel_max,
            "num_fp16_res": num_fp16_res,
            "conv_clamp": preset.conv_clamp,
            "architecture": "skip",
            "fp16_channels_last": channels_last,
        },
    }
    D_kwargs = {
        "c_dim": c_dim,
        "img_resolution": res,
        "img_channels": dataset_info["channels"],
        "architecture": "resnet",
        "channel_base": channel_base,
        "channel_max": channel_max,
        "num_fp16_res": num_fp16_res,
        "conv_clamp": preset.conv_clamp,
        "block_kwargs": {"fp16_channels_last": channels_last},
        "mapping_kwargs": {},
        "epilogue_kwargs": {"mbstd_group_size": mbstd_group},
    }
    lr = args.lr if args.lr is not None else preset.lr
    gamma = args.gamma if args.gamma is not None else preset.gamma
    if gamma is None:
        gamma = 0.0002 * res**2 / batch
    ema_kimg = args.ema_kimg if args.ema_kimg is not None else preset.ema_kimg
    if ema_kimg is None:
        ema_kimg = batch * 10 / 32
    ema_rampup = preset.ema_rampup if args.ema_rampup is None else (args.ema_rampup if args.ema_rampup >= 0 else None)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()

    return TrainingOptions(
        data=str(args.data),
        dataset_name=Path(args.data).stem,
        dataset_size=int(dataset_info["size"]),
        resolution=res,
        img_channels=int(dataset_info["channels"]),
        c_dim=c_dim,
        mirror=bool(args.mirror),
        cfg=preset.name,
        outdir=str(args.outdir),
        run_dir=None,
        seed=int(args.seed),
        kimg=float(kimg),
        max_minutes=args.max_minutes,
        resume=args.resume,
        batch=batch,
        batch_gpu=batch_gpu,
        world_size=world_size,
        G_kwargs=G_kwargs,
        D_kwargs=D_kwargs,
        glr=args.glr if args.glr is not None else lr,
        dlr=args.dlr if args.dlr is not None else lr,
        betas=(0.0, 0.99),
        eps=1e-8,
        gamma=float(gamma),
        pl_weight=args.pl_weight if args.pl_weight is not None else preset.pl_weight,
        pl_batch_shrink=2,
        pl_decay=0.01,
        style_mixing=args.style_mixing if args.style_mixing is not None else preset.style_mixing,
        G_reg_interval=args.g_reg_interval,
        D_reg_interval=args.d_reg_interval,
        ema_kimg=float(ema_kimg),
        ema_rampup=ema_rampup,
        aug=args.aug,
        augpipe=args.augpipe,
        aug_p=float(args.p),
        ada_target=float(args.target),
        ada_interval=int(args.ada_interval),
        ada_kimg=args.ada_kimg if args.ada_kimg is not None else preset.ada_kimg,
        device=device,
        amp=amp,
        channels_last=bool(channels_last),
        tf32=bool(args.tf32),
        ops=args.ops,
        workers=max(int(args.workers), 0),
        preload=args.preload,
        tick_kimg=args.tick if args.tick is not None else preset.tick_kimg,
        snap_ticks=args.snap if args.snap is not None else preset.snap_ticks,
        keep_snapshots=max(int(args.keep), 0),
        grid_cols=max(int(args.grid_cols), 1),
        grid_rows=max(int(args.grid_rows), 1),
        metrics=metrics,
        metrics_every=args.metrics_every,
        metrics_num_gen=int(args.metrics_num_gen),
        feature_net=args.feature_net,
        progress=bool(progress),
    )


def _augpipes() -> list[str]:
    from training.augment import AUGPIPES

    return list(AUGPIPES)
