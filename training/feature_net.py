"""Domain feature network: a small multi-head CNN classifier trained on the dataset's own labels.

No Inception weights exist offline, so the metrics (training/metrics.py) measure images in the space
of a network we train ourselves:

- its features (`FeatureNet.features`: the embedding the heads read plus the mean activation of each
  stage, [N, num_features]) are the feature space for the Fréchet distance, KID and precision/recall;
- its heads, one per label column, recover labels for conditional accuracy.

One head per column of the label schema (see `tryon.checkpoint.LabelSchema`): a column with several
values (a one-hot block: articleType group, colour group, gender, view) gets a softmax head; a column
with a single value (a binary attribute such as CelebA's `Smiling`, 1 = present) gets a sigmoid head.
Inputs are resized to a fixed resolution (64 by default), so one network measures a generator of any
resolution.

`tryon feature-net --data X.zip --out DIR` trains one on CPU in minutes (augmented, on a
deterministic training split) and saves it as a tryon checkpoint (network name `feature_net`) with a
MODEL_CARD.md. The images it never trained on (`dataset_split(dataset, holdout_fraction, holdout_seed)`,
recorded in its config) are the held-out real set the metrics compare against.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from tryon.checkpoint import save_checkpoint
from tryon.errors import InputError
from tryon.feature_net import (  # The network lives in tryon so that the service can load it.
    NETWORK_NAME,
    FeatureNet,
    LabelHead,
    register_feature_net,
    uint8_to_float,
)
from tryon.feature_net import heads_from_schema as heads_from_schema
from tryon.feature_net import load_feature_net as load_feature_net
from tryon.labels import LabelSchema
from tryon.nn.misc import assert_shape

log = logging.getLogger(__name__)

MODEL_CARD_FILE = "MODEL_CARD.md"


class LabelledImages(Protocol):
    """What the feature net and the metrics read: `datasets.ImageZipDataset` or anything like it.

    `dataset[i]` -> (uint8 tensor [C, H, W], float32 label vector [label_dim]). The optional
    attribute `label_schema` (dict, see LabelSchema) names the label vector's columns.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, idx: int) -> tuple[Any, Any]: ...


# ----------------------------------------------------------------------------------------------------
# Heads and labels.


class LabelMap:
    """Turns label vectors of a source schema into class targets for the heads of a feature net.

    Columns are matched by name and values by name (so a G whose schema orders values differently,
    or has extra columns, still maps). A head with no matching column, or a value the head does not
    know, gets target -1 (unknown), as does a one-hot block that is all zeros.
    """

    def __init__(
        self,
        heads: Sequence[LabelHead],                     # Heads of the feature net.
        source_schema: Mapping[str, Any] | None,        # Schema of the labels to map; None = the heads' own.
        source_dim: int | None = None,                  # Label vector length (checked when given).
    ) -> None:
        self.heads = tuple(heads)
        if source_schema is None:
            columns = [(h.name, h.values, h.offset) for h in self.heads]
            dim = max(h.offset + len(h.values) for h in self.heads)
        else:
            schema = LabelSchema.from_json(source_schema)
            columns = [(c.name, c.values, c.offset) for c in schema.columns]
            dim = schema.dim
        if source_dim is not None and source_dim < dim:
            raise InputError(f"labels have {source_dim} entries, but their schema needs {dim}")
        by_name = {name: (values, offset) for name, values, offset in columns}
        folded = {name.casefold(): name for name in by_name}
        # Per head: (source offset, lookup table source value index -> head class, source binary) | None.
        self._maps: list[tuple[int, np.ndarray, bool] | None] = []
        for head in self.heads:
            src_name = head.name if head.name in by_name else folded.get(head.name.casefold())
            if src_name is None:
                self._maps.append(None)
                continue
            src_values, src_offset = by_name[src_name]
            if head.binary != (len(src_values) == 1):
                log.warning("label column %r is binary on one side only; it is not compared", head.name)
                self._maps.append(None)
                continue
            if head.binary:
                self._maps.append((src_offset, np.array([1], dtype=np.int64), True))
                continue
            index = {v: k for k, v in enumerate(head.values)}
            index_folded = {v.casefold(): k for k, v in enumerate(head.values)}
            lut = np.array(
                [index.get(v, index_folded.get(v.casefold(), -1)) for v in src_values], dtype=np.int64
            )
            self._maps.append((src_offset, lut, False) if (lut >= 0).any() else None)

    @property
    def mapped(self) -> list[bool]:
        """Per head: whether the source labels say anything about it."""
        return [m is not None for m in self._maps]

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """labels float [N, source_dim] -> class targets int64 [N, num_heads], -1 = unknown."""
        labels = torch.as_tensor(labels, dtype=torch.float32).cpu()
        assert_shape(labels, [None, None])
        out = torch.full([labels.shape[0], len(self.heads)], -1, dtype=torch.int64)
        for i, m in enumerate(self._maps):
            if m is None:
                continue
            offset, lut, binary = m
            block = labels[:, offset : offset + len(lut)]
            if binary:
                out[:, i] = (block[:, 0] > 0.5).to(torch.int64)
                continue
            known = block.sum(dim=1) > 0
            cls = torch.from_numpy(lut)[block.argmax(dim=1)]
            out[:, i] = torch.where(known, cls, torch.full_like(cls, -1))
        return out


def split_indices(num_images: int, holdout_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, held-out) split of range(num_images), each sorted.

    The same (num_images, holdout_fraction, seed) always gives the same split, so the metrics can
    find the images a feature net never trained on.
    """
    if not 0 <= holdout_fraction < 1:
        raise InputError(f"the held-out fraction must be in [0, 1), got {holdout_fraction}")
    perm = np.random.RandomState(seed).permutation(num_images)
    num_holdout = round(num_images * holdout_fraction)
    if holdout_fraction > 0:
        num_holdout = min(max(num_holdout, 1), num_images - 1)
    return np.sort(perm[num_holdout:]), np.sort(perm[:num_holdout])


def dataset_split(
    dataset: LabelledImages, holdout_fraction: float, seed: int = 0, max_images: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) item indices of `dataset`: `split_indices` over its images.

    Mirrored copies (items with `dataset.is_flipped(i)` true, which `ImageZipDataset(xflip=True)`
    appends) are left out, so the split is the same whether or not the dataset mirrors.
    `max_images` keeps only the first images.
    """
    is_flipped = getattr(dataset, "is_flipped", None)
    if is_flipped is None:
        base = np.arange(len(dataset))
    else:
        base = np.array([i for i in range(len(dataset)) if not is_flipped(i)], dtype=np.int64)
    if max_images is not None:
        base = base[:max_images]
    train, held = split_indices(len(base), holdout_fraction, seed)
    return base[train], base[held]


# ----------------------------------------------------------------------------------------------------
# The network.



def quantize(images: torch.Tensor) -> torch.Tensor:
    """Generator output float [N, C, H, W] in [-1, 1] -> uint8, rounded as NVlabs' metrics and
    `tryon.imaging.to_uint8` do (`x * 127.5 + 128`, clamped, truncated), staying on its device."""
    return (images.detach().to(torch.float32) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def _register() -> None:
    register_feature_net()


def save_feature_net(directory: str | os.PathLike[str], net: FeatureNet, training: Mapping[str, Any],
                     *, overwrite: bool = False) -> Path:
    """Save as a tryon checkpoint: `feature_net.safetensors` + config.json (kwargs, schema, `training`)."""
    _register()
    return save_checkpoint(
        directory,
        {NETWORK_NAME: net},
        {"label_schema": net.label_schema, "training": dict(training)},
        overwrite=overwrite,
    )



# ----------------------------------------------------------------------------------------------------
# Reading images.


def iter_batches(
    dataset: LabelledImages, indices: Sequence[int] | np.ndarray, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images [B, C, H, W], float32 labels [B, label_dim]) for `indices`, in order."""
    for start in range(0, len(indices), batch_size):
        items = [dataset[int(i)] for i in indices[start : start + batch_size]]
        images = torch.stack([torch.as_tensor(np.asarray(img)) for img, _ in items])
        labels = torch.stack([torch.as_tensor(np.asarray(lab), dtype=torch.float32).reshape(-1) for _, lab in items])
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise InputError(
                f"the dataset must give uint8 images [C, H, W]; got {images.dtype} {list(images.shape[1:])}"
            )
        yield images, labels


def load_resized(
    dataset: LabelledImages, indices: Sequence[int] | np.ndarray, resolution: int, batch_size: int = 256,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All images `indices` resized to resolution² (uint8 [N, C, r, r]) and their labels [N, label_dim]."""
    from tqdm import tqdm

    images, labels = [], []
    bar = tqdm(total=len(indices), desc="reading images", unit="img", disable=not progress, leave=False)
    for img, lab in iter_batches(dataset, indices, batch_size):
        if tuple(img.shape[2:]) != (resolution, resolution):
            x = F.interpolate(uint8_to_float(img), size=(resolution, resolution), mode="bilinear",
                              antialias=True, align_corners=False)
            img = quantize(x)
        images.append(img)
        labels.append(lab)
        bar.update(len(img))
    bar.close()
    return torch.cat(images), torch.cat(labels)


# ----------------------------------------------------------------------------------------------------
# Training.


def augment(images: torch.Tensor, generator: torch.Generator, xflip: bool = True) -> torch.Tensor:
    """uint8 [N, C, r, r] -> augmented float [N, C, r, r] in [-1, 1].

    Random x-flip, translation (up to 1/8 of the size), scale (0.9-1.1) and brightness. No hue or
    saturation change: colour is one of the labels.
    """
    n = images.shape[0]
    x = uint8_to_float(images)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand([n], generator=generator) * (hi - lo) + lo

    scale = uniform(0.9, 1.1)
    flip = torch.where(torch.rand([n], generator=generator) < 0.5, -1.0, 1.0) if xflip else torch.ones([n])
    theta = torch.zeros([n, 2, 3])
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, 0, 2] = uniform(-0.125, 0.125)
    theta[:, 1, 2] = uniform(-0.125, 0.125)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    gain = uniform(0.8, 1.2).view(n, 1, 1, 1)
    shift = uniform(-0.1, 0.1).view(n, 1, 1, 1)
    return ((x + 1) * gain - 1 + shift).clamp(-1, 1)


def head_losses(net: FeatureNet, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-head loss [num_heads] (cross-entropy / binary cross-entropy over known targets; 0 if none)."""
    losses = []
    for i, (head, part) in enumerate(zip(net.heads, net.split_logits(logits), strict=True)):
        t = targets[:, i]
        known = t >= 0
        if not known.any():
            losses.append(logits.sum() * 0)
        elif head.binary:
            losses.append(F.binary_cross_entropy_with_logits(part[known, 0], t[known].to(part.dtype)))
        else:
            losses.append(F.cross_entropy(part[known], t[known]))
    return torch.stack(losses)


@torch.no_grad()
def evaluate(net: FeatureNet, images: torch.Tensor, targets: torch.Tensor, batch_size: int = 256,
             device: str | torch.device = "cpu") -> dict[str, dict[str, float]]:
    """Per-head accuracy of `net` on uint8 images [N, C, r, r] with targets [N, num_heads] (-1 = unknown).

    Returns {head: {"accuracy", "balanced" (mean recall over the classes present), "majority" (share
    of the most common class: what always answering it scores), "count"}}.
    """
    was_training = net.training
    net.eval()
    preds = torch.cat([
        net.predict(uint8_to_float(images[s : s + batch_size].to(device))).cpu()
        for s in range(0, len(images), batch_size)
    ])
    net.train(was_training)
    out: dict[str, dict[str, float]] = {}
    for i, head in enumerate(net.heads):
        known = targets[:, i] >= 0
        count = int(known.sum())
        if count == 0:
            out[head.name] = {"accuracy": float("nan"), "balanced": float("nan"), "majority": float("nan"), "count": 0}
            continue
        t = targets[known, i]
        hit = preds[known, i] == t
        recalls = [float(hit[t == k].float().mean()) for k in range(head.num_classes) if (t == k).any()]
        out[head.name] = {
            "accuracy": float(hit.float().mean()),
            "balanced": float(np.mean(recalls)),
            "majority": float(torch.bincount(t, minlength=head.num_classes).max()) / count,
            "count": count,
        }
    return out


@dataclasses.dataclass
class TrainedFeatureNet:
    """What `train_feature_net` returns."""

    net: FeatureNet                             # Trained, in eval mode, on the CPU.
    val_metrics: dict[str, dict[str, float]]    # Per head: accuracy, majority share, count (held-out split).
    history: list[dict[str, Any]]               # Per epoch: loss, seconds, mean validation accuracy.
    num_train: int
    num_val: int
    seconds: float                              # Wall-clock time.
    cpu_seconds: float                          # CPU time of this process (all threads).


def train_feature_net(
    dataset: LabelledImages,
    *,
    label_schema: Mapping[str, Any] | None = None,  # Columns to learn; None = dataset.label_schema.
    columns: Sequence[str] | None = None,       # Train heads for these columns only (None = all).
    epochs: int = 10,                           # Passes over the training split.
    val_fraction: float = 0.1,                  # Held-out share (validation here, real set of the metrics).
    seed: int = 0,                              # Seeds the split, the initialisation and the augmentation.
    resolution: int = 64,                       # Input resolution of the network.
    batch_size: int = 64,
    lr: float = 2e-3,                           # Peak AdamW learning rate (one-cycle schedule).
    weight_decay: float = 1e-4,
    xflip: bool = True,                         # Augment with horizontal flips.
    max_images: int | None = None,              # Use at most this many images (the first ones), None = all.
    net_kwargs: Mapping[str, Any] | None = None,  # Extra FeatureNet kwargs (channels, feature_dim, dropout).
    device: str | torch.device = "cpu",
    progress: bool = False,                     # Show tqdm progress bars.
) -> TrainedFeatureNet:
    """Train a FeatureNet on the labels of `dataset` and measure it on the held-out split."""
    from tqdm import tqdm

    start_time, start_cpu = time.perf_counter(), time.process_time()
    schema = label_schema if label_schema is not None else getattr(dataset, "label_schema", None)
    if schema is None:
        raise InputError("the dataset has no label schema (dataset.json without labels?): nothing to learn")
    full = LabelSchema.from_json(schema)
    if columns:
        keep = [full.column(name) for name in columns]
        schema = {"columns": [{"name": c.name, "values": list(c.values), "offset": c.offset} for c in keep],
                  "dim": full.dim}
    if epochs < 1 or batch_size < 1:
        raise InputError(f"epochs and batch size must be >= 1 (got {epochs}, {batch_size})")
    if val_fraction <= 0:
        raise InputError("a validation split is required (--val-split > 0): it is the metrics' held-out set")
    train_idx, val_idx = dataset_split(dataset, val_fraction, seed, max_images)
    if len(train_idx) + len(val_idx) < 4:
        raise InputError(f"the dataset has {len(train_idx) + len(val_idx)} images; a feature net needs more")

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # Seeds initialisation and dropout, leaves the caller's RNG.
        torch.manual_seed(seed)
        probe = dataset[int(train_idx[0])][0]
        img_channels = int(np.asarray(probe).shape[0])
        net = FeatureNet(
            label_schema=schema, resolution=resolution, img_channels=1 if img_channels == 1 else 3,
            holdout_fraction=val_fraction, holdout_seed=seed, **dict(net_kwargs or {}),
        ).to(device)
        if img_channels not in (1, 3):
            raise InputError(f"images with {img_channels} channels are not supported (1 or 3)")
        label_map = LabelMap(net.heads, None, full.dim)
        log.info("feature net: %d training / %d held-out images, heads %s", len(train_idx), len(val_idx),
                 ", ".join(f"{h.name}({h.num_classes})" for h in net.heads))
        train_images, train_labels = load_resized(dataset, train_idx, resolution, progress=progress)
        val_images, val_labels = load_resized(dataset, val_idx, resolution, progress=progress)
        train_targets = label_map.targets(train_labels)
        val_targets = label_map.targets(val_labels)

        steps_per_epoch = math.ceil(len(train_idx) / batch_size)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                    pct_start=0.15)
        history: list[dict[str, Any]] = []
        for epoch in range(epochs):
            net.train()
            epoch_start = time.perf_counter()
            order = torch.randperm(len(train_idx), generator=gen)
            total = 0.0
            bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
            for step in bar:
                batch = order[step * batch_size : (step + 1) * batch_size]
                x = augment(train_images[batch], gen, xflip=xflip).to(device)
                _, logits = net(x)
                loss = head_losses(net, logits, train_targets[batch].to(device)).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
                bar.set_postfix(loss=f"{total / (step + 1):.3f}")
            val = evaluate(net, val_images, val_targets, device=device)
            mean_acc = float(np.nanmean([v["accuracy"] for v in val.values()]))
            history.append({"epoch": epoch + 1, "loss": total / steps_per_epoch,
                            "seconds": time.perf_counter() - epoch_start, "val_mean_accuracy": mean_acc})
            log.info("epoch %d/%d: loss %.4f, mean validation accuracy %.3f (%.0f s)", epoch + 1, epochs,
                     history[-1]["loss"], mean_acc, history[-1]["seconds"])
    net = net.cpu().eval().requires_grad_(False)
    net.calibrate(train_images[torch.randperm(len(train_images), generator=gen)[:4096]])
    return TrainedFeatureNet(net=net, val_metrics=val, history=history, num_train=len(train_idx),
                             num_val=len(val_idx), seconds=time.perf_counter() - start_time,
                             cpu_seconds=time.process_time() - start_cpu)


# ----------------------------------------------------------------------------------------------------
# Model card.


def model_card(result: TrainedFeatureNet, *, data: str, command: str, training: Mapping[str, Any]) -> str:
    """MODEL_CARD.md text: what the network is, its data, how it was trained and how well it does."""
    net = result.net
    num_params = sum(p.numel() for p in net.parameters())
    lines = [
        "# Domain feature network",
        "",
        "A small CNN classifier trained on the dataset's own labels. Its features (the "
        f"{net.feature_dim}-number embedding its heads read plus the mean activation of each stage, "
        f"{net.num_features} numbers, each block scaled to unit variance on the training images) are the "
        "feature space of `tryon metrics` (Fréchet distance, KID, precision/recall), and its heads "
        "recover labels for conditional accuracy. It stands in for "
        "Inception, which is not available offline; numbers measured with it are comparable only with "
        "numbers measured with this same network.",
        "",
        "## Data",
        "",
        f"- dataset: `{data}`" + (f" — {training['data_note']}" if training.get("data_note") else ""),
        f"- {result.num_train} training images, {result.num_val} held-out images "
        f"(held-out share {net.holdout_fraction}, split seed {net.holdout_seed}; "
        "`training.feature_net.dataset_split`). The held-out images are the real set the metrics use.",
        f"- input: resized to {net.resolution}×{net.resolution}, {net.img_channels} channel(s), values in [-1, 1]",
        "",
        "## Training",
        "",
        f"- command: `{command}`",
        f"- epochs: {training.get('epochs')}, batch size {training.get('batch_size')}, AdamW, one-cycle "
        f"learning rate (peak {training.get('lr')}), seed {training.get('seed')}",
        "- augmentation: x-flip, translation, scale, brightness (no hue change: colour is a label)",
        f"- parameters: {num_params:,}; training time {result.seconds / 60:.1f} min wall-clock, "
        f"{result.cpu_seconds / 60:.1f} min CPU time, on {training.get('device')} "
        f"(torch threads: {torch.get_num_threads()})",
        "",
        "## Validation (held-out split)",
        "",
        "| head | classes | accuracy | balanced accuracy | majority-class share | images |",
        "|---|---|---|---|---|---|",
    ]
    for head in net.heads:
        m = result.val_metrics[head.name]
        classes = f"binary ({head.values[0]})" if head.binary else str(head.num_classes)
        lines.append(
            f"| {head.name} | {classes} | {m['accuracy']:.3f} | {m['balanced']:.3f} | {m['majority']:.3f} "
            f"| {int(m['count'])} |"
        )
    means = {
        key: float(np.nanmean([m[key] for m in result.val_metrics.values()]))
        for key in ("accuracy", "balanced", "majority")
    }
    lines += [
        f"| **mean** | | **{means['accuracy']:.3f}** | {means['balanced']:.3f} | {means['majority']:.3f} | |",
        "",
        "Balanced accuracy is the mean of the per-class recalls (0.5 = chance for a yes/no head, whatever "
        "the class balance); the majority-class share is what always answering the most common class scores.",
        "",
        "## Limits",
        "",
        "- Trained on a few thousand images: its features see what separates these labels, not general "
        "image quality. Use FD/KID/PR from it to compare runs on the same data, not across datasets.",
        "- FD and KID are biased by the sample sizes; compare numbers measured with the same sizes.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# CLI: `tryon feature-net`.


def open_dataset(path: str | os.PathLike[str]) -> LabelledImages:
    """Open a dataset zip with its labels (`datasets.ImageZipDataset` raises InputError when unusable)."""
    from datasets import ImageZipDataset

    return ImageZipDataset(Path(path), use_labels=True)


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (recorded in config.json and the model card)."""
    parts = ["tryon", "feature-net", "--data", args.data, "--out", args.out, "--epochs", str(args.epochs),
             "--val-split", str(args.val_split)]
    if args.columns:
        parts += ["--columns", args.columns]
    if args.data_note:
        parts += ["--data-note", args.data_note]
    for flag, value, default in [("--resolution", args.resolution, 64), ("--batch-size", args.batch_size, 64),
                                 ("--lr", args.lr, 2e-3), ("--seed", args.seed, 0),
                                 ("--max-images", args.max_images, None), ("--device", args.device, "cpu")]:
        if value != default:
            parts += [flag, str(value)]
    if args.no_xflip:
        parts.append("--no-xflip")
    if args.threads is not None:
        parts += ["--threads", str(args.threads)]
    return shlex.join(parts)


def run_feature_net_cli(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise InputError(f"{out} already exists (use --force to replace it)")
    if not 0 < args.val_split < 1:
        raise InputError(f"--val-split must be between 0 and 1, got {args.val_split}")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    dataset = open_dataset(args.data)
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    result = train_feature_net(
        dataset, columns=columns, epochs=args.epochs, val_fraction=args.val_split, seed=args.seed,
        resolution=args.resolution, batch_size=args.batch_size, lr=args.lr, xflip=not args.no_xflip,
        max_images=args.max_images, device=args.device, progress=sys.stderr.isatty(),
    )
    command = _command_line(args)
    training = {
        "kind": "domain feature network",
        "data": Path(args.data).name,
        "data_note": args.data_note,
        "num_images": result.num_train + result.num_val,
        "num_train": result.num_train,
        "num_val": result.num_val,
        "command": command,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "device": str(args.device),
        "seconds": round(result.seconds, 1),
        "cpu_seconds": round(result.cpu_seconds, 1),
        "val_accuracy": {k: round(v["accuracy"], 4) for k, v in result.val_metrics.items()},
        "val_balanced_accuracy": {k: round(v["balanced"], 4) for k, v in result.val_metrics.items()},
        "val_majority": {k: round(v["majority"], 4) for k, v in result.val_metrics.items()},
        "history": result.history,
    }
    save_feature_net(out, result.net, training, overwrite=args.force)
    (out / MODEL_CARD_FILE).write_text(
        model_card(result, data=Path(args.data).name, command=command, training=training), encoding="utf-8"
    )
    width = max(len(h.name) for h in result.net.heads)
    print(f"{'head':<{width}}  accuracy  balanced  majority")
    for name, m in result.val_metrics.items():
        print(f"{name:<{width}}  {m['accuracy']:8.3f}  {m['balanced']:8.3f}  {m['majority']:8.3f}")
    mean_acc = float(np.nanmean([m["accuracy"] for m in result.val_metrics.values()]))
    print(f"mean validation accuracy {mean_acc:.3f} on {result.num_val} held-out images; "
          f"trained {args.epochs} epochs in {result.seconds / 60:.1f} min ({result.cpu_seconds / 60:.1f} min CPU)")
    print(f"wrote {out}")
    return 0
