"""Reference points for the offline metrics: what FD / KID / precision-recall / conditional accuracy
read for "generators" of known quality, measured with a shipped domain feature network.

Each row is a fake generator measured with `training.metrics.compute_metrics` against the feature
net's held-out real images (the same call the trainer and `tryon metrics` make):

- real:      real training-split images whose labels best match the requested ones (the ceiling:
             a generator that reproduces the training set)
- blur4:     the same images, downsampled 4x and upsampled back (lost detail)
- noise:     the same images plus Gaussian noise (sigma 0.2 in [-1, 1] units)
- shuffled:  real images, but ignoring the requested label (good images, no conditioning)
- random_G:  an untrained conditional StyleGAN2 generator (the floor)

    python benchmarks/bench_metrics.py --data data/fashion128.zip --feature-net tryon/assets/fashion_features
    python benchmarks/bench_metrics.py --data data/faces64.zip --feature-net tryon/assets/face_features --num-gen 1000

Prints a table and writes benchmarks/results/bench_metrics_<data name>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.feature_net import (  # noqa: E402
    dataset_split,
    iter_batches,
    load_feature_net,
    open_dataset,
    uint8_to_float,
)
from training.metrics import compute_metrics  # noqa: E402


class RealImages(torch.nn.Module):
    """A fake G: for each requested label vector, a training image whose labels match it best."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mode: str, seed: int = 0) -> None:
        super().__init__()
        self.images, self.labels, self.mode = images, labels, mode
        self.z_dim, self.c_dim, self.img_resolution = 8, labels.shape[1], images.shape[-1]
        self.gen = torch.Generator().manual_seed(seed)

    def forward(self, z: torch.Tensor, c: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if self.mode == "shuffled":
            idx = torch.randint(len(self.images), [len(z)], generator=self.gen)
        else:
            # Label agreement + a random tie-break: a random image among the best-matching ones.
            score = c.cpu() @ self.labels.T + torch.rand([len(z), len(self.labels)], generator=self.gen) * 0.5
            idx = score.argmax(dim=1)
        x = uint8_to_float(self.images[idx])
        if self.mode == "blur4":
            r = x.shape[-1]
            x = F.interpolate(F.interpolate(x, size=(r // 4, r // 4), mode="area"), size=(r, r), mode="bilinear",
                              align_corners=False)
        elif self.mode == "noise":
            x = (x + 0.2 * torch.randn(x.shape, generator=self.gen)).clamp(-1, 1)
        return x


def random_generator(c_dim: int, resolution: int) -> torch.nn.Module:
    from tryon.nn import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=64, c_dim=c_dim, w_dim=64, img_resolution=resolution, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, synthesis_kwargs={"channel_base": 4096, "channel_max": 64})
    return G.eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--feature-net", required=True)
    parser.add_argument("--num-gen", type=int, default=2000)
    parser.add_argument("--max-train", type=int, default=4000, help="training images the fake generators draw from")
    parser.add_argument("--rows", default="real,blur4,noise,shuffled,random_G")
    args = parser.parse_args()

    dataset = open_dataset(args.data)
    net = load_feature_net(args.feature_net)
    train_idx, _ = dataset_split(dataset, net.holdout_fraction, net.holdout_seed)
    train_idx = np.random.RandomState(0).permutation(train_idx)[: args.max_train]
    batches = list(iter_batches(dataset, np.sort(train_idx), 256))
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])

    rows = []
    for name in args.rows.split(","):
        if name == "random_G":
            G = random_generator(labels.shape[1], images.shape[-1])
        else:
            G = RealImages(images, labels, name)
        t0 = time.perf_counter()
        res = compute_metrics(G, dataset, net, num_gen=args.num_gen, batch_size=128)
        rows.append({"generator": name, "seconds": round(time.perf_counter() - t0, 1), **res})
        print(f"{name}: done in {rows[-1]['seconds']} s", file=sys.stderr)

    keys = ["fd", "kid", "precision", "recall", "cond_acc", "cond_acc_real"]
    print(f"{'generator':<10} " + " ".join(f"{k:>13}" for k in keys))
    for row in rows:
        print(f"{row['generator']:<10} " + " ".join(f"{row.get(k, float('nan')):13.4f}" for k in keys))
    columns = sorted({k.split("/", 1)[1] for r in rows for k in r if k.startswith("cond_acc/")})
    if len(columns) <= 8:
        print("\nconditional accuracy per column (generated / real held-out):")
        for row in rows:
            nan = float("nan")
            cells = [
                f"{c} {row.get(f'cond_acc/{c}', nan):.3f}/{row.get(f'cond_acc_real/{c}', nan):.3f}" for c in columns
            ]
            print(f"{row['generator']:<10} " + ", ".join(cells))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_metrics_{Path(args.data).stem}.json"
    doc = {
        "data": str(args.data),
        "feature_net": str(args.feature_net),
        "num_gen": args.num_gen,
        "num_real": rows[0]["num_real"] if rows else None,
        "machine": {"cpu_threads": torch.get_num_threads(), "platform": platform.platform()},
        "rows": rows,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
