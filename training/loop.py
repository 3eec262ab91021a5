"""The StyleGAN2-ADA training loop (one process of a possibly distributed job).

Each step takes one global batch and runs the phases Gmain, Greg (every G_reg_interval steps),
Dmain and Dreg (every D_reg_interval steps); then updates G_ema, the image counter and ADA's p.
Within a phase each process accumulates gradients over `batch / world_size / batch_gpu` rounds of
`batch_gpu` images; DistributedDataParallel averages them over processes in the last round.

Randomness is a function of (seed, step, phase, global round): the real images of a step are a slice
of an endless sequence of per-epoch permutations, latents and generated labels come from a generator
seeded per step, and the global torch RNG (noise inputs, style mixing, augmentation, path-length
noise) is reseeded before every round with a seed derived from the round's *global* index. So:

- a resumed run continues exactly where the snapshot left off (bit for bit on the same machine);
- N processes with batch B compute the same thing as one process that accumulates the same B in N
  rounds (up to floating-point summation order).

Run folder: training_options.json (training/options.py), log.jsonl (one JSON object per tick),
TensorBoard events and loss.png / metrics.png (training/runlog.py), reals.png, grid.json, and
network-snapshot-<kimg>/ folders (training/snapshot.py). The real minibatches and the sample grid
come from training/data.py.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import io
import json
import logging
import resource
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

import tryon.ops
from training import dist
from training.augment import AdaController, AugmentPipe
from training.data import (
    TAG_LATENTS,
    TAG_ROUND,
    RealImages,
    SampleGrid,
    derive_seed,
    label_distribution,
    open_dataset,
)
from training.loss import PHASES, GeneratorForTraining, StyleGAN2Loss, build_phases
from training.options import OPTIONS_FILE, TrainingOptions
from training.runlog import RunLog, make_run_dir, tick_line
from training.snapshot import (
    SNAPSHOT_PREFIX,
    ResumeState,
    capture_rng,
    load_snapshot,
    restore_rng,
    save_snapshot,
    snapshot_name,
)
from tryon.errors import CheckpointError, InputError
from tryon.imaging import make_grid, to_uint8
from tryon.nn import Discriminator, Generator

log = logging.getLogger(__name__)


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------------
# Statistics.


class TickStats:
    """Sums and counts of per-sample statistics on the device; reduced over processes once per tick."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, stats: Mapping[str, torch.Tensor]) -> None:
        for name, values in stats.items():
            s = values.detach().float().sum()
            self._sums[name] = self._sums[name] + s if name in self._sums else s
            self._counts[name] = self._counts.get(name, 0) + int(values.numel())

    def reduce(self, names: Sequence[str]) -> dict[str, float]:
        """Means over all processes of the statistics `names` (the same list on every process)."""
        if not names:
            return {}
        sums = torch.stack([self._sums.get(n, torch.zeros([], device=self.device)) for n in names])
        counts = torch.tensor([float(self._counts.get(n, 0)) for n in names], device=self.device)
        both = dist.all_reduce_sum(torch.cat([sums, counts]))
        k = len(names)
        out = {}
        for i, name in enumerate(names):
            if both[k + i] > 0:
                out[name] = float(both[i] / both[k + i])
        self._sums.clear()
        self._counts.clear()
        return out


STAT_NAMES = (
    "Loss/G/loss", "Loss/G/reg", "Loss/pl_penalty", "Loss/D/loss", "Loss/D/reg", "Loss/r1_penalty",
    "Loss/scores/real", "Loss/scores/fake", "Loss/signs/real",
)


def peak_memory_gib(device: torch.device) -> float:
    """Peak memory of this process: allocated CUDA memory on a GPU, max RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux.


# ----------------------------------------------------------------------------------------------------
# The trainer.


class Trainer:
    """Networks, optimisers, loss and counters of one process; `step()` trains one global batch."""

    def __init__(
        self,
        opts: TrainingOptions,
        info: dist.DistInfo,
        data: RealImages,
        resume_networks: Mapping[str, torch.nn.Module] | None = None,
        resume: ResumeState | None = None,
    ) -> None:
        self.opts = opts
        self.info = info
        self.device = info.device
        self.data = data
        dev = self.device
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = opts.tf32
            torch.backends.cudnn.allow_tf32 = opts.tf32

        torch.manual_seed(opts.seed)
        self.G = Generator(**opts.G_kwargs).train().requires_grad_(False).to(dev)
        self.D = Discriminator(**opts.D_kwargs).train().requires_grad_(False).to(dev)
        self.G_ema = copy.deepcopy(self.G).eval()
        if resume_networks is not None:
            for name, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
                # A compact export has G_ema and D only: G starts from G_ema (and vice versa).
                src = resume_networks.get(name)
                twin = {"G": "G_ema", "G_ema": "G"}.get(name)
                if src is None and twin is not None:
                    src = resume_networks.get(twin)
                if src is None:
                    raise CheckpointError(f"--resume: the snapshot has no network {name!r}")
                try:
                    module.load_state_dict(src.state_dict(), strict=True)
                except RuntimeError as exc:
                    first = str(exc).strip().splitlines()[-1].strip()
                    raise InputError(
                        f"--resume: the snapshot's {name} does not fit the network these options build ({first}); "
                        "use the same --cfg and overrides as the run you resume"
                    ) from exc

        self.augment_pipe: AugmentPipe | None = None
        self.ada: AdaController | None = None
        if opts.aug != "noaug":
            self.augment_pipe = AugmentPipe.from_name(opts.augpipe).to(dev)
            self.augment_pipe.p = opts.aug_p
            if opts.aug == "ada":
                self.ada = AdaController(
                    target=opts.ada_target, interval=opts.ada_interval, speed_kimg=opts.ada_kimg, batch_size=opts.batch
                )

        cuda_amp = dev.type == "cuda"
        autocast_dtype = torch.bfloat16 if cuda_amp and opts.amp == "bf16" else None
        # On the CPU, bf16 runs the fp16 blocks (NVlabs' num_fp16_res) in bf16: activations stay bf16
        # from block to block, which autocast (a cast around every conv) does not manage as fast.
        half_dtype = torch.bfloat16 if dev.type == "cpu" and opts.amp == "bf16" else None
        G_train: torch.nn.Module = GeneratorForTraining(self.G, autocast_dtype=autocast_dtype)
        D_train: torch.nn.Module = self.D
        if info.world_size > 1:
            ids = [dev.index] if dev.type == "cuda" else None
            for module in (self.G, self.D):
                module.requires_grad_(True)
            G_train = _wrap_ddp(G_train, ids)
            D_train = _wrap_ddp(D_train, ids)
            for module in (self.G, self.D):
                module.requires_grad_(False)
        self.loss = StyleGAN2Loss(
            G_train, D_train, num_ws=self.G.num_ws, augment_pipe=self.augment_pipe, r1_gamma=opts.gamma,
            style_mixing_prob=opts.style_mixing, pl_weight=opts.pl_weight, pl_batch_shrink=opts.pl_batch_shrink,
            pl_decay=opts.pl_decay, force_fp32=cuda_amp and opts.amp != "fp16",
            autocast_dtype=autocast_dtype, half_dtype=half_dtype, device=dev,
        )
        self.phases, self.opt_G, self.opt_D = build_phases(
            self.G, self.D, glr=opts.glr, dlr=opts.dlr, betas=opts.betas, eps=opts.eps,
            G_reg_interval=opts.G_reg_interval if opts.pl_weight != 0 else None,
            D_reg_interval=opts.D_reg_interval if opts.gamma != 0 else None,
        )
        self.rounds = opts.batch // opts.world_size // opts.batch_gpu

        self.cur_nimg = 0                                   # Images shown to D so far.
        self.batch_idx = 0                                  # Steps done so far.
        self.cur_tick = 0                                   # Ticks done so far.
        self.seed = opts.seed
        self.stats = TickStats(dev)
        self._ada_signs: torch.Tensor | None = None         # [sum, count] of sign(D(real)) since the last ADA step.
        if resume is not None:
            self._restore(resume)

    # -- state ---------------------------------------------------------------------------------------

    def _restore(self, r: ResumeState) -> None:
        if r.seed != self.opts.seed:
            log.warning("resuming with the snapshot's seed %d (not --seed %d)", r.seed, self.opts.seed)
        self.seed = r.seed
        self.data.seed = r.seed
        self.cur_nimg, self.batch_idx, self.cur_tick = r.cur_nimg, r.batch_idx, r.cur_tick
        for name, opt in (("G", self.opt_G), ("D", self.opt_D)):
            _load_optimizer(opt, r.optimizers[name], f"--resume: the {name} optimiser state")
        self._reset_lrs()  # This run's learning rates (they may be overridden on resume); the moments stay.
        if self.augment_pipe is not None:
            self.augment_pipe.p = r.augment_p
        if self.ada is not None and r.ada:
            self.ada.sign_sum = float(r.ada.get("sign_sum", 0.0))
            self.ada.sign_count = float(r.ada.get("sign_count", 0.0))
        self.loss.pl_mean.fill_(r.pl_mean)
        restore_rng(r.rng)

    def _reset_lrs(self) -> None:
        """Learning rates and betas as this run's options say (with the lazy-reg correction)."""
        for opt, lr, interval in (
            (self.opt_G, self.opts.glr, self.opts.G_reg_interval if self.opts.pl_weight != 0 else None),
            (self.opt_D, self.opts.dlr, self.opts.D_reg_interval if self.opts.gamma != 0 else None),
        ):
            ratio = 1.0 if interval is None else interval / (interval + 1)
            for group in opt.param_groups:
                group["lr"] = lr * ratio
                group["betas"] = (self.opts.betas[0] ** ratio, self.opts.betas[1] ** ratio)

    def resume_state(self) -> ResumeState:
        return ResumeState(
            cur_nimg=self.cur_nimg,
            batch_idx=self.batch_idx,
            cur_tick=self.cur_tick,
            seed=self.seed,
            augment_p=self.augment_pipe.p if self.augment_pipe is not None else 0.0,
            ada={"sign_sum": self.ada.sign_sum, "sign_count": self.ada.sign_count} if self.ada is not None else {},
            pl_mean=float(self.loss.pl_mean.item()),
            optimizers={"G": self.opt_G.state_dict(), "D": self.opt_D.state_dict()},
            rng=capture_rng(),
        )

    # -- one step ------------------------------------------------------------------------------------

    def _latents(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """z [phases, B_local, z_dim] and gen labels [phases, B_local, c_dim] of this process."""
        gen = torch.Generator().manual_seed(derive_seed(self.seed, TAG_LATENTS, step))
        n_phases, B, B_local = len(PHASES), self.opts.batch, self.opts.batch // self.opts.world_size
        z = torch.randn([n_phases, B, self.G.z_dim], generator=gen)
        c_idx = torch.randint(self.data.num_images, [n_phases, B], generator=gen)
        sl = slice(self.info.rank * B_local, (self.info.rank + 1) * B_local)
        z = z[:, sl].to(self.device, non_blocking=True)
        c = self.data.labels_device[c_idx[:, sl].to(self.data.labels_device.device)].to(self.device)
        return z, c

    def step(self) -> None:
        """Train on one global batch: all due phases, G_ema, counters, ADA."""
        opts = self.opts
        step = self.batch_idx
        real_u8, real_c = self.data.get(step)
        real_img = real_u8.to(torch.float32) / 127.5 - 1
        all_z, all_c = self._latents(step)
        bg = opts.batch_gpu
        rounds = self.rounds
        for name, module, interval in self.phases:
            if step % interval != 0:
                continue
            p_idx = PHASES.index(name)
            opt = self.opt_G if name.startswith("G") else self.opt_D
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            for r in range(rounds):
                torch.manual_seed(derive_seed(self.seed, TAG_ROUND, step, p_idx, self.info.rank * rounds + r))
                sl = slice(r * bg, (r + 1) * bg)
                stats = self.loss.accumulate_gradients(
                    name, real_img[sl], real_c[sl], all_z[p_idx, sl], all_c[p_idx, sl],
                    gain=interval / rounds, sync=r == rounds - 1,
                )
                self.stats.add(stats)
                if self.ada is not None and "Loss/signs/real" in stats:
                    signs = stats["Loss/signs/real"]
                    total = torch.stack([signs.sum(), torch.tensor(float(signs.numel()), device=signs.device)])
                    self._ada_signs = total if self._ada_signs is None else self._ada_signs + total
            module.requires_grad_(False)
            for param in module.parameters():
                if param.grad is not None:
                    torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
            opt.step()
            if name == "Greg":
                self.loss.finish_pl_phase()

        self._update_ema()
        self.cur_nimg += opts.batch
        self.batch_idx += 1
        if self.ada is not None and self.batch_idx % self.ada.interval == 0:
            self._adjust_ada()

    def gather_ada_signs(self) -> None:
        """Move the signs of D(real) accumulated on the device of every process into the controller
        (a collective: all processes call it, at the same step). Before a snapshot, so that the
        resume state holds them."""
        if self.ada is None:
            return
        local = self._ada_signs if self._ada_signs is not None else torch.zeros([2], device=self.device)
        total = dist.all_reduce_sum(local.clone())
        self._ada_signs = None
        self.ada.accumulate(float(total[0]), float(total[1]))

    def _adjust_ada(self) -> None:
        assert self.ada is not None and self.augment_pipe is not None
        self.gather_ada_signs()
        self.augment_pipe.p = self.ada.adjust(self.augment_pipe.p)

    @torch.no_grad()
    def _update_ema(self) -> None:
        """G_ema <- G + beta * (G_ema - G), beta from the half-life (ramped up early on); buffers copied."""
        ema_nimg = self.opts.ema_kimg * 1000
        if self.opts.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * self.opts.ema_rampup)
        beta = 0.5 ** (self.opts.batch / max(ema_nimg, 1e-8))
        ema_params: list[torch.Tensor] = list(self.G_ema.parameters())
        params: list[torch.Tensor] = list(self.G.parameters())
        if beta == 0:
            torch._foreach_copy_(ema_params, params)
        else:
            torch._foreach_lerp_(ema_params, params, 1 - beta)  # One kernel per group on a GPU.
        torch._foreach_copy_(list(self.G_ema.buffers()), list(self.G.buffers()))

    # -- outputs -------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample_grid(self, grid: SampleGrid) -> np.ndarray:
        """uint8 [rows * H, cols * W, C]: G_ema at the grid's seeds and labels (noise 'const')."""
        z = grid.latents(self.G_ema.z_dim)
        images = []
        for i in range(0, z.shape[0], max(self.opts.batch_gpu, 1)):
            zz = z[i : i + self.opts.batch_gpu].to(self.device)
            cc = grid.labels[i : i + self.opts.batch_gpu].to(self.device)
            images.append(to_uint8(self.G_ema(zz, cc, noise_mode="const", force_fp32=True)))
        return make_grid(np.concatenate(images), cols=grid.cols)


def _load_optimizer(opt: torch.optim.Optimizer, state: Mapping[str, Any], what: str) -> None:
    """Load an optimiser state saved on any device into `opt`, keeping `opt`'s implementation flags
    (fused / foreach / capturable belong to this machine, not to the snapshot)."""
    flags = [{k: g.get(k) for k in ("fused", "foreach", "capturable")} for g in opt.param_groups]
    try:
        opt.load_state_dict(dict(state))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{what} does not fit these networks ({exc})") from exc
    for group, saved in zip(opt.param_groups, flags, strict=True):
        group.update(saved)
        for p in group["params"]:
            st = opt.state.get(p, {})
            if "step" in st and isinstance(st["step"], torch.Tensor):
                on_device = bool(saved.get("fused") or saved.get("capturable"))
                st["step"] = st["step"].to(p.device if on_device else "cpu", torch.float32)


def _wrap_ddp(module: torch.nn.Module, device_ids: list[int] | None) -> DistributedDataParallel:
    """DDP without buffer syncing in forward: each process keeps its own w_avg (as NVlabs). The
    initial parameters and buffers are broadcast from rank 0."""
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        return DistributedDataParallel(module, device_ids=device_ids, forward_sync_buffers=False)
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)


# ----------------------------------------------------------------------------------------------------
# Entry point.


class StopSignals:
    """SIGTERM and SIGINT (a preempted job, Ctrl-C) ask the loop to stop after the current step and
    write a snapshot, so the run resumes where it stopped; a second signal stops at once.

    Installed only from the main thread (signal handlers cannot be set elsewhere); restores the
    previous handlers on exit.
    """

    def __init__(self) -> None:
        self.received: str | None = None    # Name of the first signal received, e.g. "SIGTERM".
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            raise KeyboardInterrupt(f"{name} received twice")
        self.received = name
        _print(f"{name} received: stopping after this step with a snapshot (send it again to stop at once)")


def train(
    opts: TrainingOptions, info: dist.DistInfo | None = None, start_mono: float | None = None
) -> dict[str, Any]:
    """Run (or resume) training; returns a summary. Only the main process writes files.

    start_mono: `time.monotonic()` at which the --max-minutes clock started (default: now).
    """
    start_time = time.time()
    start_mono = start_mono if start_mono is not None else time.monotonic()
    info = info if info is not None else dist.init_from_env(opts.device)
    dataset = open_dataset(opts.data, mirror=opts.mirror)
    if int(dataset.resolution) != opts.resolution:
        raise InputError(f"{opts.data} holds {dataset.resolution}x{dataset.resolution} images, not {opts.resolution}")
    label_schema = getattr(dataset, "label_schema", None) if opts.c_dim > 0 else None

    resume_networks = resume = None
    if opts.resume:
        resume_networks, _, resume = load_snapshot(opts.resume, device="cpu")
        if resume is None:
            log.warning("%s has no resume state: starting from its weights with fresh optimisers", opts.resume)

    data = RealImages(
        dataset, batch=opts.batch, rank=info.rank, world_size=info.world_size, seed=opts.seed,
        device=info.device, preload=opts.preload, workers=opts.workers, c_dim=opts.c_dim,
    )
    with tryon.ops.use_impl(opts.ops), StopSignals() as stops:
        trainer = Trainer(opts, info, data, resume_networks=resume_networks, resume=resume)
        return _run(trainer, dataset, label_schema, start_time, start_mono, stops)


def _run(
    trainer: Trainer, dataset: Any, label_schema: Mapping[str, Any] | None, start_time: float, start_mono: float,
    stops: StopSignals | None = None,
) -> dict[str, Any]:
    opts, info = trainer.opts, trainer.info
    main = info.is_main
    run_dir: Path | None = None
    runlog: RunLog | None = None
    grid = SampleGrid.build(trainer.data.labels, opts.grid_rows, opts.grid_cols, label_schema)
    if main:
        desc = f"{opts.dataset_name}-{opts.cfg}-b{opts.batch}"
        run_dir = make_run_dir(opts.outdir, desc)
        opts = dataclasses.replace(opts, run_dir=str(run_dir))
        (run_dir / OPTIONS_FILE).write_text(json.dumps(opts.to_json(), indent=2) + "\n", encoding="utf-8")
        (run_dir / "grid.json").write_text(json.dumps(grid.to_json(), indent=2) + "\n", encoding="utf-8")
        reals = [i for i in grid.real_indices if i is not None]
        if reals:
            real_u8 = trainer.data.images_at(reals)
            cells = np.zeros([len(grid.real_indices), *real_u8.shape[1:]], dtype=np.uint8)
            cells[[k for k, i in enumerate(grid.real_indices) if i is not None]] = real_u8.numpy()
            (run_dir / "reals.png").write_bytes(_png_bytes(make_grid(cells.transpose(0, 2, 3, 1), cols=grid.cols)))
        if trainer.cur_nimg == 0:
            (run_dir / "fakes_init.png").write_bytes(_png_bytes(trainer.sample_grid(grid)))
        runlog = RunLog(run_dir, history=[])
        _print(f"training {opts.cfg} on {opts.data} ({opts.dataset_size} images, c_dim {opts.c_dim}) -> {run_dir}")
        _print(f"device {info.device} x {info.world_size}, batch {opts.batch} ({opts.batch_gpu} per pass), "
               f"amp {opts.amp}, ops {opts.ops}, starting at {trainer.cur_nimg / 1000:.3f} kimg")

    feature_net = None
    total_nimg = round(opts.kimg * 1000)
    limit_s = opts.max_minutes * 60 if opts.max_minutes is not None else None
    bar = None
    if main and opts.progress:
        from tqdm import tqdm

        bar = tqdm(total=opts.kimg, initial=trainer.cur_nimg / 1000, unit="kimg", dynamic_ncols=True,
                   bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} kimg [{elapsed}<{remaining}, {rate_fmt}]")
    tick_start_nimg = trainer.cur_nimg
    tick_start_time = time.monotonic()
    train_start_nimg = trainer.cur_nimg
    train_start_time = time.monotonic()
    stop_reason = "kimg"
    last_snapshot: Path | None = None
    last_snapshot_nimg = -1
    try:
        while True:
            done = trainer.cur_nimg >= total_nimg
            if not done:
                out_of_time = limit_s is not None and time.monotonic() - start_mono >= limit_s
                signalled = stops is not None and stops.received is not None
                if dist.broadcast_flag(out_of_time or signalled, info.device):  # Rank 0 decides for all.
                    done, stop_reason = True, ("signal" if signalled else "time")
            if not done:
                trainer.step()
                if bar is not None:
                    bar.update(opts.batch / 1000)
                if trainer.cur_nimg < total_nimg and trainer.cur_nimg < tick_start_nimg + opts.tick_kimg * 1000:
                    continue
                done = trainer.cur_nimg >= total_nimg
            if trainer.cur_nimg == tick_start_nimg and last_snapshot_nimg == trainer.cur_nimg:
                break  # Nothing trained since the last snapshot (e.g. time ran out right after it).

            # -- tick ---------------------------------------------------------------------------------
            trainer.cur_tick += 1
            now = time.monotonic()
            tick_kimg = (trainer.cur_nimg - tick_start_nimg) / 1000
            entry: dict[str, Any] = {
                "tick": trainer.cur_tick,
                "kimg": trainer.cur_nimg / 1000,
                "nimg": trainer.cur_nimg,
                "step": trainer.batch_idx,
                "timestamp": time.time(),
                "time_s": time.time() - start_time,
            }
            entry.update(trainer.stats.reduce(STAT_NAMES))
            if tick_kimg > 0:
                entry["Timing/sec_per_tick"] = now - tick_start_time
                entry["Timing/sec_per_kimg"] = (now - tick_start_time) / tick_kimg
                entry["Timing/kimg_per_s"] = tick_kimg / max(now - tick_start_time, 1e-9)
            entry["Progress/augment_p"] = trainer.augment_pipe.p if trainer.augment_pipe is not None else 0.0
            if trainer.ada is not None and trainer.ada.last_rt is not None:
                entry["Progress/rt"] = trainer.ada.last_rt
            entry["Resources/peak_mem_gib"] = peak_memory_gib(info.device)
            tick_start_nimg, tick_start_time = trainer.cur_nimg, now

            snap_due = done or (opts.snap_ticks > 0 and trainer.cur_tick % opts.snap_ticks == 0)
            if snap_due:
                trainer.gather_ada_signs()
                if main:
                    assert run_dir is not None
                    last_snapshot = _save(trainer, run_dir, grid, label_schema, opts)
                    last_snapshot_nimg = trainer.cur_nimg
                    entry["snapshot"] = last_snapshot.name
                metrics_due = opts.metrics_every is not None and (
                    done or trainer.cur_tick % opts.metrics_every == 0
                )
                if metrics_due and main:
                    metrics, feature_net = _compute_metrics(trainer, dataset, feature_net, opts)
                    if metrics:
                        entry["metrics"] = metrics
                dist.barrier()
            if main:
                assert runlog is not None
                runlog.write(entry)
                line = tick_line(entry)
                if bar is not None:
                    bar.write(line)
                else:
                    _print(line)
            if done:
                break
    finally:
        if bar is not None:
            bar.close()
        if runlog is not None:
            runlog.close()

    elapsed = time.monotonic() - train_start_time
    trained_kimg = (trainer.cur_nimg - train_start_nimg) / 1000
    return {
        "run_dir": str(run_dir) if run_dir is not None else None,
        "snapshot": str(last_snapshot) if last_snapshot is not None else None,
        "stopped_by": stop_reason,
        "kimg": trainer.cur_nimg / 1000,
        "steps": trainer.batch_idx,
        "trained_kimg": trained_kimg,
        "train_seconds": elapsed,
        "sec_per_kimg": elapsed / trained_kimg if trained_kimg > 0 else None,
        "peak_mem_gib": peak_memory_gib(info.device),
        "augment_p": trainer.augment_pipe.p if trainer.augment_pipe is not None else 0.0,
        "device": str(info.device),
        "world_size": info.world_size,
    }


def _save(
    trainer: Trainer, run_dir: Path, grid: SampleGrid, label_schema: Mapping[str, Any] | None, opts: TrainingOptions
) -> Path:
    grid_png = _png_bytes(trainer.sample_grid(grid))
    training_meta = {
        "cfg": opts.cfg,
        "dataset": opts.dataset_name,
        "kimg": trainer.cur_nimg / 1000,
        "steps": trainer.batch_idx,
        "augment_p": trainer.augment_pipe.p if trainer.augment_pipe is not None else 0.0,
        "resolution": opts.resolution,
        "grid": grid.to_json(),
    }
    distribution = label_distribution(trainer.data.labels, label_schema)
    if distribution is not None:
        training_meta["label_distribution"] = distribution
    path = save_snapshot(
        run_dir / snapshot_name(trainer.cur_nimg),
        {"G": trainer.G, "D": trainer.D, "G_ema": trainer.G_ema},
        {"G": opts.G_kwargs, "D": opts.D_kwargs, "G_ema": opts.G_kwargs},
        label_schema,
        training_meta,
        trainer.resume_state(),
        samples_png=grid_png,
    )
    if opts.keep_snapshots > 0:
        snaps = sorted(p for p in run_dir.iterdir() if p.name.startswith(SNAPSHOT_PREFIX) and p.is_dir())
        for old in snaps[: -opts.keep_snapshots]:
            shutil.rmtree(old, ignore_errors=True)
    return path


def _compute_metrics(
    trainer: Trainer, dataset: Any, feature_net: Any, opts: TrainingOptions
) -> tuple[dict[str, float], Any]:
    """Metrics of G_ema (main process), or {} with a warning when the metrics module is missing."""
    try:
        from training.feature_net import load_feature_net
        from training.metrics import compute_metrics
    except ImportError as exc:
        log.warning("metrics are not available (%s); skipping them", exc)
        return {}, feature_net
    if feature_net is None:
        assert opts.feature_net is not None
        feature_net = load_feature_net(opts.feature_net, device=trainer.device)
    metric_dataset = open_dataset(opts.data, mirror=False) if opts.mirror else dataset
    result = compute_metrics(
        trainer.G_ema, metric_dataset, feature_net, metrics=opts.metrics, num_gen=opts.metrics_num_gen,
        device=trainer.device,
    )
    return {k: float(v) for k, v in result.items()}, feature_net



def _print(text: str) -> None:
    print(text, file=sys.stdout, flush=True)
