"""Image quality metrics that work offline: FD, KID, precision/recall and conditional accuracy.

Features come from our domain feature network (training/feature_net.py), trained on the dataset's
own labels, because Inception weights cannot be downloaded here. Generated images are compared
with the real images that feature net never trained on (its held-out split, chosen
deterministically by `dataset_split`). Both go through the same path: uint8 (generated images are
quantised as NVlabs does), then the network.

- `fd`: Fréchet distance between Gaussians fitted to the two feature sets (the FID formula).
- `kid`: kernel distance, the unbiased MMD² with the cubic polynomial kernel, averaged over random
  subsets as in NVlabs' `kernel_inception_distance.py`.
- `pr`: precision and recall of Kynkäänniemi et al. (2019): k-NN balls (k=3) around each real
  (generated) feature; precision = share of generated samples inside the real manifold, recall =
  share of real samples inside the generated manifold.
- `cond_acc`: generate with labels drawn from the held-out set, and count how often the feature
  net's head for each label column recovers the requested value (`cond_acc/<column>`; `cond_acc` is
  their mean). `cond_acc_real` is the same classifier on the real held-out images: the ceiling.
- With the TorchScript Inception file NVlabs uses (`inception-2015-12-05.pt`, supplied by the user,
  never downloaded): standard `inception_fid` and `inception_kid` on the same images.

`compute_metrics` is what the trainer calls periodically (real features are cached in memory per
dataset and feature net); `tryon metrics --checkpoint DIR --data Y.zip` measures a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.commands import ALL_METRICS, INCEPTION_FILE
from training.feature_net import (
    FeatureNet,
    LabelledImages,
    LabelMap,
    dataset_split,
    iter_batches,
    load_feature_net,
    open_dataset,
    quantize,
    uint8_to_float,
)
from tryon.errors import InputError

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------
# The metrics, on feature arrays.


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features [N, D] -> (mean [D], covariance [D, D]) in float64 (covariance normalised by N - 1)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {list(f.shape)}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^½).

    The trace of the matrix square root is computed as the sum of square roots of the eigenvalues
    of S1^½ S2 S1^½ (symmetric positive semi-definite, same spectrum as S1 S2), which is stable for
    singular covariances where `scipy.linalg.sqrtm` returns complex noise.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: {mu1.shape}, {sigma1.shape} vs {mu2.shape}, {sigma2.shape}")
    evals, evecs = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    fd = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
    return max(fd, 0.0)  # Only rounding makes it negative.


def frechet_distance(real: np.ndarray, gen: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] and [M, D]."""
    return frechet_distance_from_stats(*feature_stats(real), *feature_stats(gen))


def kernel_distance(
    real: np.ndarray,
    gen: np.ndarray,
    num_subsets: int = 100,         # Random subsets averaged over.
    max_subset_size: int = 1000,    # Samples per subset (fewer when a set is smaller).
    seed: int = 0,
) -> float:
    """KID: unbiased MMD² with the kernel k(x, y) = (x·y / D + 1)³, averaged over subsets.

    Follows NVlabs' metrics/kernel_inception_distance.py (which follows Bińkowski et al. 2018),
    with a seeded subset choice. About 0 for two samples of one distribution (it can be negative).
    """
    real = np.asarray(real, np.float64)
    gen = np.asarray(gen, np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"need features [N, D] and [M, D], got {list(real.shape)} and {list(gen.shape)}")
    n = real.shape[1]
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.RandomState(seed)
    t = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


def precision_recall(real: np.ndarray, gen: np.ndarray, k: int = 3, batch_size: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019), as NVlabs' metrics/precision_recall.py.

    Each sample of a set gets a ball reaching its k-th nearest neighbour in the same set (itself
    excluded). Precision: share of generated samples inside some real ball. Recall: share of real
    samples inside some generated ball. Returns (precision, recall), each in [0, 1].
    """
    r = torch.as_tensor(np.asarray(real, np.float32))
    g = torch.as_tensor(np.asarray(gen, np.float32))
    if r.ndim != 2 or g.ndim != 2 or r.shape[1] != g.shape[1]:
        raise ValueError(f"need features [N, D] and [M, D], got {list(r.shape)} and {list(g.shape)}")
    if min(r.shape[0], g.shape[0]) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples in each set")

    def share_inside(manifold: torch.Tensor, probes: torch.Tensor) -> float:
        radii = torch.cat([
            torch.cdist(rows, manifold).kthvalue(k + 1, dim=1).values for rows in manifold.split(batch_size)
        ])  # k + 1: the nearest neighbour of a sample in its own set is itself.
        inside = torch.cat([(torch.cdist(rows, manifold) <= radii).any(dim=1) for rows in probes.split(batch_size)])
        return float(inside.float().mean())

    return share_inside(r, g), share_inside(g, r)


def label_accuracy(net: FeatureNet, predicted: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Per-head share of predicted classes [N, H] equal to targets [N, H] (-1 = not asked, skipped).

    Returns {head name: accuracy} for heads with at least one target.
    """
    out = {}
    for i, head in enumerate(net.heads):
        known = targets[:, i] >= 0
        if known.any():
            out[head.name] = float((predicted[known, i] == targets[known, i]).float().mean())
    return out


# ----------------------------------------------------------------------------------------------------
# Inception (only with a file the user supplies).


def load_inception(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """Load NVlabs' TorchScript Inception-v3 feature extractor (`inception-2015-12-05.pt`).

    Only from a file the user gives: nothing is downloaded. It is called as
    `detector(uint8 [N, 3, H, W], return_features=True)` -> pool features [N, 2048].
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such Inception file: {path} (the TorchScript {INCEPTION_FILE} NVlabs publishes)")
    try:
        detector = torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        raise InputError(f"{path} is not a TorchScript Inception file ({INCEPTION_FILE}): {exc}") from exc
    return detector.eval()


def _inception_features(detector: Callable[..., torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    return detector(images, return_features=True).to(torch.float64).cpu()


# ----------------------------------------------------------------------------------------------------
# Features of real and generated images.


@dataclass
class FeatureSet:
    """Features of a set of images (one row per image)."""

    features: np.ndarray                # Feature net features [N, num_features], float64.
    predicted: torch.Tensor             # Feature net's class per head, int64 [N, num_heads].
    labels: torch.Tensor                # Label vectors the images have / were asked for [N, label_dim].
    inception: np.ndarray | None        # Inception pool features [N, 2048], or None.


def _net_outputs(net: FeatureNet, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features, logits = net(uint8_to_float(images))
    return features.to(torch.float64).cpu(), net.classes_from_logits(logits).cpu()


@torch.no_grad()
def real_features(
    dataset: LabelledImages,
    net: FeatureNet,
    indices: Sequence[int] | np.ndarray,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    inception: Callable[..., torch.Tensor] | None = None,
    progress: bool = False,
) -> FeatureSet:
    """Features of dataset images `indices` (uint8 as stored)."""
    from tqdm import tqdm

    feats, preds, labels, incs = [], [], [], []
    bar = tqdm(total=len(indices), desc="real images", unit="img", disable=not progress, leave=False)
    for images, lab in iter_batches(dataset, indices, batch_size):
        images = images.to(device)
        f, p = _net_outputs(net, images)
        feats.append(f)
        preds.append(p)
        labels.append(lab)
        if inception is not None:
            incs.append(_inception_features(inception, images))
        bar.update(len(images))
    bar.close()
    return FeatureSet(
        features=torch.cat(feats).numpy(),
        predicted=torch.cat(preds),
        labels=torch.cat(labels),
        inception=torch.cat(incs).numpy() if incs else None,
    )


@torch.no_grad()
def generated_features(
    G: torch.nn.Module,
    net: FeatureNet,
    labels: torch.Tensor,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    truncation_psi: float = 1.0,
    noise_mode: str = "random",
    seed: int = 0,
    inception: Callable[..., torch.Tensor] | None = None,
    progress: bool = False,
) -> FeatureSet:
    """Generate one image per label vector in `labels` [N, c_dim] (z and noise seeded) and measure it.

    G is called as `G(z, c, truncation_psi=..., noise_mode=...)` -> float [N, C, H, W] in [-1, 1]
    (c is None when G.c_dim == 0); its output is quantised to uint8 first, like real images.
    """
    from tqdm import tqdm

    device = torch.device(device)
    z_gen = torch.Generator().manual_seed(seed)
    c_dim = int(getattr(G, "c_dim", 0))
    feats, preds, incs = [], [], []
    bar = tqdm(total=len(labels), desc="generated images", unit="img", disable=not progress, leave=False)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # noise_mode="random" draws from the global RNG.
        for start in range(0, len(labels), batch_size):
            c = labels[start : start + batch_size]
            z = torch.randn([len(c), int(G.z_dim)], generator=z_gen).to(device)  # type: ignore[arg-type]
            img = G(z, c.to(device) if c_dim > 0 else None, truncation_psi=truncation_psi, noise_mode=noise_mode)
            images = quantize(img)
            f, p = _net_outputs(net, images)
            feats.append(f)
            preds.append(p)
            if inception is not None:
                incs.append(_inception_features(inception, images))
            bar.update(len(c))
    bar.close()
    return FeatureSet(
        features=torch.cat(feats).numpy(),
        predicted=torch.cat(preds),
        labels=labels.cpu(),
        inception=torch.cat(incs).numpy() if incs else None,
    )


# Real features per (dataset, feature net, inception, split): periodic metrics during training measure
# the same real images every time. Entries hold weak references so a dataset that is gone (and an
# object that reuses its id) cannot return stale features.
_REAL_CACHE: dict[tuple[Any, ...], tuple[Callable[[], Any], Callable[[], Any], Callable[[], Any], FeatureSet]] = {}


def _weak(obj: Any) -> Callable[[], Any]:
    if obj is None:
        return lambda: None
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def _cached_real_features(
    dataset: LabelledImages, net: FeatureNet, indices: np.ndarray, inception: Any, **kwargs: Any
) -> FeatureSet:
    key = (id(dataset), id(net), id(inception), len(dataset), hash(indices.tobytes()))
    hit = _REAL_CACHE.get(key)
    if hit is not None and hit[0]() is dataset and hit[1]() is net and hit[2]() is inception:
        return hit[3]
    for stale in [k for k, v in _REAL_CACHE.items() if v[0]() is None or v[1]() is None]:
        del _REAL_CACHE[stale]
    result = real_features(dataset, net, indices, inception=inception, **kwargs)
    _REAL_CACHE[key] = (_weak(dataset), _weak(net), _weak(inception), result)
    return result


# ----------------------------------------------------------------------------------------------------
# All together.


def compute_metrics(
    G: torch.nn.Module,
    dataset: LabelledImages,
    feature_net: FeatureNet,
    metrics: Sequence[str] = ALL_METRICS,
    num_gen: int = 2000,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    *,
    truncation_psi: float = 1.0,                # Truncation of the generated samples (1 = none).
    noise_mode: str = "random",                 # G's noise mode ("random" as NVlabs' metrics).
    seed: int = 0,                              # Seeds z, noise and the labels asked for.
    real_split: str = "heldout",                # "heldout": images the feature net never trained on; "all".
    max_real: int | None = None,                # Use at most this many real images (None = the whole split).
    label_schema: Mapping[str, Any] | None = None,  # Layout of the labels; None = dataset.label_schema.
    inception: Callable[..., torch.Tensor] | None = None,  # `load_inception(...)`: adds inception_fid/kid.
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    pr_k: int = 3,
    progress: bool = False,
) -> dict[str, float]:
    """Measure generator `G` against real images of `dataset` in the feature space of `feature_net`.

    metrics: any of "fd", "kid", "pr" (-> "precision", "recall"), "cond_acc" (-> "cond_acc",
        "cond_acc/<column>", "cond_acc_real", "cond_acc_real/<column>"). With `inception`, "fd"
        and "kid" add "inception_fid" and "inception_kid".
    Generated images are conditioned on labels drawn (seeded, with replacement) from the real set,
    so both sets have the same label distribution. The result also holds "num_real", "num_gen".
    Mirrored copies in `dataset` are skipped (see `dataset_split`); a `max_size` subset changes the split.
    Networks are used in eval mode and put back as they were; `feature_net` is moved to `device`.
    """
    wanted = [m.strip() for m in metrics]
    unknown = sorted(set(wanted) - set(ALL_METRICS))
    if unknown or not wanted:
        raise InputError(f"unknown metrics {unknown}; choose from {', '.join(ALL_METRICS)}")
    if num_gen < 2:
        raise InputError(f"num_gen must be at least 2, got {num_gen}")
    if real_split == "heldout":
        _, indices = dataset_split(dataset, feature_net.holdout_fraction, feature_net.holdout_seed)
    elif real_split == "all":
        indices = np.concatenate(dataset_split(dataset, 0.0))
    else:
        raise InputError(f"real_split must be 'heldout' or 'all', got {real_split!r}")
    if max_real is not None:
        indices = indices[:max_real]
    if len(indices) < 2:
        raise InputError(f"only {len(indices)} real images to compare with; the dataset is too small")

    g_training, net_training = G.training, feature_net.training
    G.eval()
    feature_net.to(device).eval()
    try:
        real = _cached_real_features(dataset, feature_net, indices, inception, batch_size=batch_size,
                                     device=device, progress=progress)
        c_dim = int(getattr(G, "c_dim", 0))
        if c_dim > 0 and real.labels.shape[1] != c_dim:
            raise InputError(f"the generator takes labels of size {c_dim}, the dataset has {real.labels.shape[1]}")
        rng = np.random.RandomState(seed)
        gen_labels = real.labels[torch.from_numpy(rng.randint(len(real.labels), size=num_gen))]
        gen = generated_features(G, feature_net, gen_labels, batch_size=batch_size, device=device,
                                 truncation_psi=truncation_psi, noise_mode=noise_mode, seed=seed,
                                 inception=inception, progress=progress)
    finally:
        G.train(g_training)
        feature_net.train(net_training)

    results: dict[str, float] = {"num_real": float(len(indices)), "num_gen": float(num_gen)}
    if "fd" in wanted:
        results["fd"] = frechet_distance(real.features, gen.features)
    if "kid" in wanted:
        results["kid"] = kernel_distance(real.features, gen.features, kid_subsets, kid_subset_size, seed)
    if "pr" in wanted:
        # Equal sizes, as Kynkäänniemi et al. recommend: the larger set is subsampled (seeded).
        n = min(len(real.features), len(gen.features))
        r = real.features[np.sort(rng.choice(len(real.features), n, replace=False))]
        g = gen.features[np.sort(rng.choice(len(gen.features), n, replace=False))]
        results["precision"], results["recall"] = precision_recall(r, g, k=pr_k)
    if real.inception is not None and gen.inception is not None:
        if "fd" in wanted:
            results["inception_fid"] = frechet_distance(real.inception, gen.inception)
        if "kid" in wanted:
            results["inception_kid"] = kernel_distance(real.inception, gen.inception, kid_subsets,
                                                       kid_subset_size, seed)
    if "cond_acc" in wanted:
        results.update(_conditional_accuracy(G, dataset, feature_net, real, gen, label_schema))
    return results


def _conditional_accuracy(
    G: torch.nn.Module, dataset: LabelledImages, net: FeatureNet, real: FeatureSet, gen: FeatureSet,
    label_schema: Mapping[str, Any] | None,
) -> dict[str, float]:
    if int(getattr(G, "c_dim", 0)) == 0:
        log.warning("cond_acc: the generator is unconditional; skipped")
        return {}
    schema = label_schema if label_schema is not None else getattr(dataset, "label_schema", None)
    dim = int(real.labels.shape[1])
    if schema is None and dim != int(net.label_schema["dim"]):
        log.warning("cond_acc: the labels have no names and do not match the feature net's layout; skipped")
        return {}
    label_map = LabelMap(net.heads, schema, dim)
    if not any(label_map.mapped):
        log.warning("cond_acc: no label column of the data matches a head of the feature net; skipped")
        return {}
    out: dict[str, float] = {}
    for name, fs in (("cond_acc", gen), ("cond_acc_real", real)):
        per_head = label_accuracy(net, fs.predicted, label_map.targets(fs.labels))
        if per_head:
            out[name] = float(np.mean(list(per_head.values())))
            out.update({f"{name}/{head}": acc for head, acc in per_head.items()})
    return out


# ----------------------------------------------------------------------------------------------------
# CLI: `tryon metrics`.


def assets_dir() -> Path:
    import tryon

    return Path(tryon.__file__).resolve().parent / "assets"


def find_feature_net(label_schema: Mapping[str, Any] | None, label_dim: int,
                     search: Sequence[Path] | None = None) -> Path:
    """The shipped feature net whose heads match the data's label columns best (by column name)."""
    from tryon.checkpoint import read_checkpoint_config
    from tryon.labels import LabelSchema

    root = assets_dir()
    candidates = list(search) if search is not None else [p for p in sorted(root.glob("*_features")) if p.is_dir()]
    names = {c.name.casefold() for c in LabelSchema.from_json(label_schema).columns} if label_schema else set()
    scored = []
    for path in candidates:
        try:
            schema = LabelSchema.from_json(read_checkpoint_config(path).get("label_schema"))
        except Exception:  # Not a feature net checkpoint: not a candidate.
            continue
        heads = {c.name.casefold() for c in schema.columns}
        score = len(heads & names) if names else int(schema.dim == label_dim)
        if score > 0:
            scored.append((score, str(path)))
    if not scored:
        raise InputError(
            f"no feature network in {root} matches this dataset's labels; train one with "
            "`tryon feature-net --data X.zip --out DIR` and pass --feature-net DIR"
        )
    scored.sort(reverse=True)
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        raise InputError(f"several feature networks match ({scored[0][1]}, {scored[1][1]}); pass --feature-net")
    return Path(scored[0][1])


def run_metrics_cli(args: argparse.Namespace) -> int:
    from tryon.checkpoint import load_checkpoint

    wanted = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(ALL_METRICS))
    if unknown or not wanted:
        raise InputError(f"unknown metrics {unknown}; choose from {', '.join(ALL_METRICS)}")
    if args.num_gen < 2:
        raise InputError(f"--num-gen must be at least 2, got {args.num_gen}")
    detector = load_inception(args.inception, args.device) if args.inception else None
    ckpt = load_checkpoint(args.checkpoint, names=(args.network,), device=args.device)
    G = ckpt.networks[args.network]
    dataset = open_dataset(args.data)
    data_schema = getattr(dataset, "label_schema", None)
    schema = data_schema or ckpt.label_schema
    label_dim = int(getattr(dataset, "label_dim", 0))
    net_dir = Path(args.feature_net) if args.feature_net else find_feature_net(schema, label_dim)
    net = load_feature_net(net_dir, device=args.device)
    if int(getattr(G, "c_dim", 0)) not in (0, label_dim):
        raise InputError(f"the checkpoint's generator takes labels of size {G.c_dim}, but {args.data} has "
                         f"labels of size {label_dim}")
    results = compute_metrics(
        G, dataset, net, wanted, num_gen=args.num_gen, device=args.device, batch_size=args.batch_size,
        truncation_psi=args.truncation, noise_mode=args.noise_mode, seed=args.seed, real_split=args.real,
        max_real=args.max_real, label_schema=schema, inception=detector, progress=sys.stderr.isatty(),
    )
    print(format_table(results))
    if args.json:
        doc = {
            "checkpoint": str(args.checkpoint),
            "network": args.network,
            "data": str(args.data),
            "feature_net": str(net_dir),
            "inception": str(args.inception) if args.inception else None,
            "truncation_psi": args.truncation,
            "noise_mode": args.noise_mode,
            "seed": args.seed,
            "real": args.real,
            "results": results,
        }
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


def format_table(results: Mapping[str, float]) -> str:
    """Results as a two-column table; per-column conditional accuracies beside the real ceiling."""
    rows: list[tuple[str, str]] = []
    for key in ("fd", "kid", "precision", "recall", "inception_fid", "inception_kid"):
        if key in results:
            rows.append((key, _fmt(results[key])))
    if "cond_acc" in results:
        real = results.get("cond_acc_real")
        rows.append(("cond_acc", _fmt(results["cond_acc"]) + (f"   (real images: {_fmt(real)})" if real else "")))
        for key, value in results.items():
            if key.startswith("cond_acc/"):
                column = key.split("/", 1)[1]
                real_col = results.get(f"cond_acc_real/{column}")
                rows.append((f"  {column}", _fmt(value) + (f"   ({_fmt(real_col)})" if real_col is not None else "")))
    rows.append(("images", f"{int(results['num_gen'])} generated, {int(results['num_real'])} real"))
    width = max(len(k) for k, _ in rows)
    return "\n".join([f"{'metric':<{width}}  value"] + [f"{k:<{width}}  {v}" for k, v in rows])


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
