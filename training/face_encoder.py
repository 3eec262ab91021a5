"""`tryon face-encoder`: train the e4e-like FaceEncoder (tryon.face.encoder) for a face generator.

    OMP_NUM_THREADS=1 tryon face-encoder --out tryon/assets/face_encoder --data data/faces64.zip \\
        --minutes 15

Two kinds of batches, interleaved:

- generated pairs: z -> w (truncation psi in [0.5, 1]) -> G(w, random noise). The encoder is told the
  w it came from (latent loss: MSE over W+) with its per-layer offsets penalised (L2, e4e's delta
  regulariser), so its output stays near W where edits behave. The pairs are generated once into a
  pool at the start (generation costs as much as a training step; the pool is reused every epoch).
- real aligned faces (`tryon dataset faces` zip, x-flipped at random): no w is known, so the loss is
  on the image: the encoder's W+ is rendered (const noise, as `project_face` starts) and compared to
  the photo with the projection's loss (multi-scale D features, pixel MSE, 1 - SSIM).

The held-out real faces (the same split as the feature net's: `split_indices`, 10 %, seed 0) are
never trained on; the model card reports the reconstruction measured on them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import platform
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.feature_net import split_indices
from tryon.checkpoint import save_checkpoint
from tryon.errors import InputError
from tryon.face.encoder import NETWORK_NAME, FaceEncoder, register_encoder_class, ws_levels
from tryon.face.models import FACE_DIR, FaceModels, load_face_models, synthesize
from tryon.face.project import ProjectionOptions, ReconstructionLoss, measure

log = logging.getLogger(__name__)

MODEL_CARD_FILE = "MODEL_CARD.md"


@dataclasses.dataclass(frozen=True)
class EncoderTrainingOptions:
    minutes: float = 15.0               # Wall-clock budget of the training loop (pool and eval not counted).
    max_steps: int | None = None        # Stop after this many latent steps (None = the time budget only).
    pool_size: int = 512                # Generated (w, image) pairs, made once.
    batch: int = 32                     # Generated pairs per latent step.
    real_batch: int = 8                 # Real faces per image step.
    image_every: int = 1                # One image step after every N latent steps.
    lr: float = 2e-3                    # Adam learning rate (cosine decay to 5 % over the budget).
    latent_weight: float = 1.0          # MSE(ws_hat, w) on generated pairs.
    offset_weight: float = 0.1          # L2 of the per-layer offsets (both kinds of batches).
    image_weight: float = 1.0           # Projection loss on real faces.
    psi_min: float = 0.5                # Truncation of the generated pairs: psi ~ U[psi_min, 1].
    holdout_fraction: float = 0.1       # Real faces never trained on (the feature net's split).
    holdout_seed: int = 0
    max_real: int | None = None         # Use at most this many training faces (None = all).
    eval_real: int = 64                 # Held-out faces measured at the end.
    eval_pairs: int = 256               # Fresh generated pairs for the W recovery error at the end.
    seed: int = 0


@dataclasses.dataclass
class TrainedEncoder:
    encoder: FaceEncoder
    metrics: dict[str, Any]
    training: dict[str, Any]


def load_real_faces(path: str | os.PathLike[str], resolution: int, options: EncoderTrainingOptions
                    ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(training faces uint8 [N, 3, R, R], held-out faces uint8 [M, 3, R, R], number of faces in the zip)."""
    from datasets.torch_dataset import ImageZipDataset

    ds = ImageZipDataset(path, use_labels=False)
    if ds.resolution != resolution or ds.num_channels != 3:
        raise InputError(f"{path} holds {ds.resolution}² images with {ds.num_channels} channels; "
                         f"the generator needs {resolution}² RGB")
    train_idx, held_idx = split_indices(len(ds), options.holdout_fraction, options.holdout_seed)
    if options.max_real is not None:
        train_idx = train_idx[: options.max_real]
    held_idx = held_idx[: options.eval_real]

    def read(idx: np.ndarray) -> torch.Tensor:
        return torch.stack([ds[int(i)][0] for i in idx])

    return read(train_idx), read(held_idx), len(ds)


def make_pool(models: FaceModels, size: int, options: EncoderTrainingOptions, gen: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated pairs: (w [size, w_dim], images uint8 [size, 3, R, R])."""
    G = models.G
    ws, imgs = [], []
    with torch.no_grad():
        for start in range(0, size, 64):
            n = min(64, size - start)
            z = torch.randn([n, G.z_dim], generator=gen)
            psi = options.psi_min + (1 - options.psi_min) * torch.rand([n, 1], generator=gen)
            w = G.mapping(z, None)[:, 0]
            w = models.w_avg.lerp(w, psi)
            img = G.synthesis(w.unsqueeze(1).repeat(1, G.num_ws, 1), noise_mode="random")
            ws.append(w)
            imgs.append((img * 127.5 + 128).clamp(0, 255).to(torch.uint8))
    return torch.cat(ws), torch.cat(imgs)


def to_float(images: torch.Tensor) -> torch.Tensor:
    return images.to(torch.float32) / 127.5 - 1


def train_encoder(models: FaceModels, data: str | os.PathLike[str], options: EncoderTrainingOptions,
                  log_every: int = 50) -> TrainedEncoder:
    """Train a FaceEncoder for `models.G` (see the module docstring)."""
    torch.manual_seed(options.seed)
    gen = torch.Generator().manual_seed(options.seed)
    t_start = time.perf_counter()
    real, held, zip_size = load_real_faces(data, models.resolution, options)
    t_data = time.perf_counter() - t_start
    pool_w, pool_img = make_pool(models, options.pool_size, options, gen)
    t_pool = time.perf_counter() - t_start - t_data
    log.info("data: %d training / %d held-out faces (%.0f s); pool of %d pairs (%.0f s)",
             len(real), len(held), t_data, len(pool_w), t_pool)

    G = models.G
    enc = FaceEncoder(
        img_resolution=models.resolution,
        img_channels=G.img_channels,
        w_dim=G.w_dim,
        levels=ws_levels(G.synthesis.block_ws_ranges(), models.resolution),
    )
    with torch.no_grad():
        enc.w_avg.copy_(models.w_avg)
    enc.train()
    opt = torch.optim.Adam(enc.parameters(), lr=options.lr, betas=(0.9, 0.99))
    proj_opts = ProjectionOptions()
    budget = options.minutes * 60
    t_loop = time.perf_counter()
    step = image_steps = 0
    history: list[dict[str, float]] = []
    run = {"latent": 0.0, "offsets": 0.0, "image": 0.0}
    while True:
        elapsed = time.perf_counter() - t_loop
        if elapsed >= budget or (options.max_steps is not None and step >= options.max_steps):
            break
        frac = elapsed / budget if budget > 0 else 1.0
        lr = options.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for group in opt.param_groups:
            group["lr"] = lr
        # Latent step on generated pairs.
        idx = torch.randint(len(pool_w), [options.batch], generator=gen)
        base, offsets = enc.forward_parts(to_float(pool_img[idx]))
        ws_hat = base.unsqueeze(1) + offsets
        latent = (ws_hat - pool_w[idx].unsqueeze(1)).square().mean()
        off = offsets.square().mean()
        loss = options.latent_weight * latent + options.offset_weight * off
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run["latent"] = 0.9 * run["latent"] + 0.1 * latent.item() if step else latent.item()
        run["offsets"] = 0.9 * run["offsets"] + 0.1 * off.item() if step else off.item()
        step += 1
        # Image step on real faces.
        if step % options.image_every == 0:
            ridx = torch.randint(len(real), [options.real_batch], generator=gen)
            x = to_float(real[ridx])
            flip = torch.rand([len(x)], generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            base, offsets = enc.forward_parts(x)
            img = synthesize(models, base.unsqueeze(1) + offsets)
            image_loss, _ = ReconstructionLoss(models, x, proj_opts)(img)
            loss = options.image_weight * image_loss + options.offset_weight * offsets.square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run["image"] = 0.9 * run["image"] + 0.1 * image_loss.item() if image_steps else image_loss.item()
            image_steps += 1
        if step % log_every == 0:
            history.append({"step": step, "seconds": round(time.perf_counter() - t_loop, 1),
                            **{k: round(v, 5) for k, v in run.items()}})
            log.info("step %d (%d image steps) %.0f s: %s", step, image_steps, time.perf_counter() - t_loop, run)
    t_train = time.perf_counter() - t_loop
    enc.eval().requires_grad_(False)
    metrics = evaluate_encoder(models, enc, held, gen, pairs=options.eval_pairs)
    training = {
        "steps": step,
        "image_steps": image_steps,
        "loop_seconds": round(t_train, 1),
        "data_seconds": round(t_data, 1),
        "pool_seconds": round(t_pool, 1),
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "real_faces": len(real),
        "held_out_faces": len(held),
        "zip_faces": zip_size,
        "options": dataclasses.asdict(options),
        "history": history[-20:],
    }
    return TrainedEncoder(encoder=enc, metrics=metrics, training=training)


@torch.no_grad()
def evaluate_encoder(
    models: FaceModels, enc: FaceEncoder, held: torch.Tensor, gen: torch.Generator, pairs: int = 256
) -> dict[str, Any]:
    """Reconstruction of held-out real faces (encoder alone vs w_avg), and W recovery on fresh pairs."""
    rows: dict[str, list[dict[str, Any]]] = {"encoder": [], "w_avg": []}
    avg_ws = models.w_avg.reshape(1, 1, -1).repeat(1, models.num_ws, 1)
    for i in range(len(held)):
        x = to_float(held[i : i + 1])
        rows["encoder"].append(measure(models, synthesize(models, enc(x)), x))
        rows["w_avg"].append(measure(models, synthesize(models, avg_ws), x))
    out: dict[str, Any] = {}
    for name, ms in rows.items():
        out[name] = {k: round(float(np.mean([m[k] for m in ms])), 4) for k in ("psnr", "ssim", "feature_distance")}
    out["held_out_faces"] = len(held)
    out["generated_pairs"] = pairs
    pool_w, pool_img = make_pool(models, pairs, EncoderTrainingOptions(), gen)
    ws_hat = enc(to_float(pool_img))
    out["generated_w_rmse"] = round(float((ws_hat - pool_w.unsqueeze(1)).square().mean().sqrt()), 4)
    out["w_avg_w_rmse"] = round(float((models.w_avg - pool_w).square().mean().sqrt()), 4)
    return out


def _shown_path(path: Path) -> str:
    """A path as the model card shows it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(FACE_DIR.parents[2]))
    except ValueError:
        return str(path)


def model_card(result: TrainedEncoder, *, models: FaceModels, data: str, command: str, threads: int) -> str:
    m, t = result.metrics, result.training
    o = t["options"]
    n_params = sum(p.numel() for p in result.encoder.parameters())
    gen_kimg = None
    with contextlib.suppress(OSError, ValueError):
        gen_kimg = json.loads((models.directory / "config.json").read_text()).get("training", {}).get("kimg")
    lines = [
        "# Face encoder (e4e-like, image -> W+ of the face generator)",
        "",
        "`tryon.face.encoder.FaceEncoder`: a small strided CNN (64² input) whose coarsest features give a base",
        "w (w_avg + a learned offset) and whose 4² / 8² / 16² features give per-layer offsets for the coarse /",
        "middle / fine layers of W+. `project_face` starts its optimisation from it. It is tied to one face",
        f"generator: `{_shown_path(models.directory)}` G_ema sha256 `{models.generator_sha256[:16]}…` "
        f"(kimg {gen_kimg});",
        "`load_face_models` refuses it for any other generator (projection then starts from w_avg).",
        "",
        "## Data",
        "",
        f"- generated pairs: {o['pool_size']} (w, G(w)) pairs, psi ~ U[{o['psi_min']}, 1], random noise, made once.",
        f"- real faces: `{data}` ({t['zip_faces']} CelebA faces aligned at 64², the face G's training set;",
        "  CelebA: non-commercial research only), x-flipped at random; "
        f"{t['real_faces']} used for training, {t['held_out_faces']} held out",
        f"  (split fraction {o['holdout_fraction']}, seed {o['holdout_seed']}: the feature net's held-out set).",
        "",
        "## Training",
        "",
        f"- command: `{command}`",
        f"- {t['steps']} latent steps (batch {o['batch']}: MSE to the true w + {o['offset_weight']} x L2 of the",
        f"  offsets), {t['image_steps']} image steps on real faces (batch {o['real_batch']}: D features + pixel MSE",
        "  + 0.5 (1 - SSIM),"
        " the projection's loss, through the frozen G with const noise); Adam, lr "
        f"{o['lr']} with cosine decay; seed {o['seed']}.",
        f"- wall time: {t['wall_seconds'] / 60:.1f} min (training loop {t['loop_seconds'] / 60:.1f} min, "
        "reading the zip "
        f"{t['data_seconds']:.0f} s, generating the pool {t['pool_seconds']:.0f} s, evaluation in the rest)",
        f"- hardware: {threads} torch thread(s) of a shared {os.cpu_count()}-core {platform.machine()} CPU, "
        f"torch {torch.__version__}; parameters: {n_params:,}",
        "",
        f"## Reconstruction of {m['held_out_faces']} held-out real faces (encoder alone, no optimisation)",
        "",
        "| start | PSNR (dB) | SSIM | feature distance |",
        "|---|---|---|---|",
        f"| encoder | {m['encoder']['psnr']:.2f} | {m['encoder']['ssim']:.3f} | "
        f"{m['encoder']['feature_distance']:.3f} |",
        f"| w_avg (no encoder) | {m['w_avg']['psnr']:.2f} | {m['w_avg']['ssim']:.3f} | "
        f"{m['w_avg']['feature_distance']:.3f} |",
        "",
        "Feature distance: squared distance of the face_features classifier's features / 2 per block (0 = same,",
        f"~1 = two random real faces). On {m['generated_pairs']} fresh generated pairs, the RMS error of the predicted",
        f"W+ against the true w is {m['generated_w_rmse']:.3f} (w_avg alone: {m['w_avg_w_rmse']:.3f}).",
        "",
        "The reconstruction is bounded by the generator: a weak G cannot draw a given face, whatever the",
        "encoder. `benchmarks/bench_face.py` measures the encoder with and without optimisation on LFW photos.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# CLI.


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (recorded in config.json and the model card)."""
    parts = ["tryon", "face-encoder", "--out", str(args.out), "--data", str(args.data), "--minutes", str(args.minutes)]
    defaults = [("--face", args.face, None), ("--max-steps", args.max_steps, None), ("--pool", args.pool, 512),
                ("--batch", args.batch, 32), ("--real-batch", args.real_batch, 8),
                ("--image-every", args.image_every, 1), ("--lr", args.lr, 2e-3), ("--max-real", args.max_real, None),
                ("--eval-real", args.eval_real, 64), ("--eval-pairs", args.eval_pairs, 256), ("--seed", args.seed, 0),
                ("--threads", args.threads, None)]
    for flag, value, default in defaults:
        if value != default:
            parts += [flag, str(value)]
    command = shlex.join(parts)
    if os.environ.get("OMP_NUM_THREADS"):
        command = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} {command}"
    return command


def run_face_encoder_cli(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.data).is_file():
        raise InputError(f"no such dataset: {args.data} (make it with: tryon dataset faces ... --res 64)")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it")
    for name, value in (("--minutes", args.minutes), ("--pool", args.pool), ("--batch", args.batch)):
        if value <= 0:
            raise InputError(f"{name} must be positive")
    models = load_face_models(args.face, encoder=False, classifier=None if args.face is None else False)
    options = EncoderTrainingOptions(
        minutes=args.minutes, max_steps=args.max_steps, pool_size=args.pool, batch=args.batch,
        real_batch=args.real_batch, image_every=args.image_every, lr=args.lr, max_real=args.max_real,
        eval_real=args.eval_real, eval_pairs=args.eval_pairs, seed=args.seed,
    )
    result = train_encoder(models, args.data, options)
    command = _command_line(args)
    register_encoder_class()
    training = {
        **result.training,
        "metrics": result.metrics,
        "command": command,
        "data": str(args.data),
        "generator": {"directory": str(models.directory if args.face else FACE_DIR.relative_to(FACE_DIR.parents[2])),
                      "sha256": models.generator_sha256},
    }
    save_checkpoint(out, {NETWORK_NAME: result.encoder}, {"training": training}, overwrite=args.overwrite)
    card = model_card(result, models=models, data=str(args.data), command=command, threads=torch.get_num_threads())
    (out / MODEL_CARD_FILE).write_text(card)
    print(json.dumps(result.metrics, indent=2))
    print(f"saved {out}")
    return 0
