"""`FaceEncoder`: an aligned face image -> W+ of the face generator, in one forward pass.

e4e-like (Tov et al. 2021, "Designing an Encoder for StyleGAN Image Manipulation"), sized for 64²
faces on a CPU: a small strided CNN gives a feature pyramid (res/2 .. 4); a base latent `w` comes
from the coarsest features, and per-layer offsets come from the level that matches each generator
layer's resolution (coarse layers from 4², middle from 8², fine from 16² features):

    ws[:, i] = w_avg + base(feat) + (0 if i == 0 else offset_i(feat_level(i)))

The offset heads start at zero, so an untrained encoder returns w_avg, and training penalises the
offsets (L2), which keeps ws near W (one w for all layers) where edits behave. Trained by
`tryon face-encoder` (training/face_encoder.py); shipped in tryon/assets/face_encoder.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from tryon.checkpoint import register_network_class
from tryon.nn.misc import assert_shape

NETWORK_NAME = "encoder"            # Name of the network inside its checkpoint folder.


def ws_levels(block_ws_ranges: dict[int, tuple[int, int]], img_resolution: int) -> list[int]:
    """Feature level (0 = coarse, 1 = middle, 2 = fine) of every ws index of a synthesis network.

    block_ws_ranges: `G.synthesis.block_ws_ranges()`. A w is used by the block of its highest
    resolution (a ToRGB shares its w with the next block's first conv). Coarse = blocks up to
    res / 8, middle = up to res / 2, fine = the rest (for 64²: 4-8 | 16-32 | 64).
    """
    num_ws = max(start + count for start, count in block_ws_ranges.values())
    res_of = [0] * num_ws
    for res, (start, count) in block_ws_ranges.items():
        for i in range(start, start + count):
            res_of[i] = max(res_of[i], res)
    return [0 if r <= img_resolution // 8 else 1 if r <= img_resolution // 2 else 2 for r in res_of]


class _Stage(torch.nn.Sequential):
    """conv 3x3 stride 2 + conv 3x3, leaky ReLU: halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            torch.nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
            torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(out_channels, out_channels, 3, padding=1),
            torch.nn.LeakyReLU(0.2),
        )


class FaceEncoder(torch.nn.Module):
    """Aligned face [N, C, R, R] in [-1, 1] -> ws [N, num_ws, w_dim] (W+).

    Inputs of another size are resized to img_resolution first (antialiased bilinear).
    """

    w_avg: torch.Tensor

    def __init__(
        self,
        img_resolution: int,                # Input resolution (the generator's).
        img_channels: int,                  # Input colour channels.
        w_dim: int,                         # Generator's W dimensionality.
        levels: Sequence[int],              # Feature level (0 coarse, 1 middle, 2 fine) per ws index (`ws_levels`).
        channels: Sequence[int] = (32, 64, 128, 256),  # Width of each stride-2 stage (res/2, res/4, ...).
        pool: int = 2,                      # Each level's features are pooled to pool x pool before its heads.
        hidden: int = 256,                  # Width of the base head's hidden layer.
    ) -> None:
        super().__init__()
        levels = [int(v) for v in levels]
        if len(channels) < 3 or img_resolution // 2 ** len(channels) < 1 or not levels or set(levels) - {0, 1, 2}:
            raise ValueError(
                f"bad FaceEncoder shape: img_resolution={img_resolution}, channels={list(channels)}, levels={levels}"
            )
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.w_dim = w_dim
        self.num_ws = len(levels)
        self.levels = levels
        self.pool = pool
        self.init_kwargs: dict[str, Any] = {
            "img_resolution": img_resolution,
            "img_channels": img_channels,
            "w_dim": w_dim,
            "levels": levels,
            "channels": list(channels),
            "pool": pool,
            "hidden": hidden,
        }
        chans = [img_channels, *channels]
        self.stages = torch.nn.ModuleList(_Stage(a, b) for a, b in itertools.pairwise(chans))
        # Levels read the last three stages: fine = 3rd last, middle = 2nd last, coarse = last.
        self.level_channels = list(channels[-3:])
        feat = [c * pool * pool for c in self.level_channels]
        coarse_in = feat[2]
        self.base = torch.nn.Sequential(
            torch.nn.Linear(coarse_in, hidden), torch.nn.LeakyReLU(0.2), torch.nn.Linear(hidden, w_dim)
        )
        self.offset_heads = torch.nn.ModuleList()
        for level in (0, 1, 2):
            count = sum(1 for i, v in enumerate(levels) if v == level and i > 0)
            head = torch.nn.Linear(feat[2 - level], max(count, 1) * w_dim)
            torch.nn.init.zeros_(head.weight)
            torch.nn.init.zeros_(head.bias)
            self.offset_heads.append(head)
        last = self.base[-1]
        assert isinstance(last, torch.nn.Linear)
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def prepare(self, img: torch.Tensor) -> torch.Tensor:
        """float [N, C, H, W] in [-1, 1] -> [N, img_channels, img_resolution, img_resolution]."""
        assert_shape(img, [None, self.img_channels, None, None])
        img = img.to(torch.float32)
        if tuple(img.shape[2:]) != (self.img_resolution, self.img_resolution):
            size = (self.img_resolution, self.img_resolution)
            img = F.interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)
        return img

    def forward_parts(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """img -> (base w [N, w_dim], offsets [N, num_ws, w_dim] with offsets[:, 0] = 0)."""
        x = self.prepare(img)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        pooled = [F.adaptive_avg_pool2d(f, self.pool).flatten(1) for f in feats[-3:]]  # fine, middle, coarse
        n = x.shape[0]
        base = self.w_avg.unsqueeze(0) + self.base(pooled[2])
        offsets = torch.zeros([n, self.num_ws, self.w_dim], dtype=base.dtype, device=base.device)
        for level, head in enumerate(self.offset_heads):
            idx = [i for i, v in enumerate(self.levels) if v == level and i > 0]
            if idx:
                offsets[:, idx] = head(pooled[2 - level]).reshape(n, len(idx), self.w_dim)
        return base, offsets

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        base, offsets = self.forward_parts(img)
        ws = base.unsqueeze(1) + offsets
        assert_shape(ws, [img.shape[0], self.num_ws, self.w_dim])
        return ws

    def extra_repr(self) -> str:
        return f"img_resolution={self.img_resolution}, w_dim={self.w_dim}, num_ws={self.num_ws}, levels={self.levels}"


def register_encoder_class() -> None:
    """Allow checkpoints to hold a FaceEncoder (idempotent; called by whoever saves or loads one)."""
    register_network_class(FaceEncoder)
