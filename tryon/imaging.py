"""Image post-processing shared by the CLI, training snapshots and the pipelines.

Generator outputs are float tensors in [-1, 1], NCHW. Everything that leaves the process (PNG files,
API responses, grids) goes through `to_uint8` so the rounding is the same everywhere (NVlabs':
`x * 127.5 + 128`, clamped, truncated).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] (or [C, H, W]) float in [-1, 1] -> uint8 array [N, H, W, C] (or [H, W, C]).

    Values outside [-1, 1] are clamped. C is 1 (grayscale), 3 (RGB) or 4 (RGBA).
    """
    if images.ndim not in (3, 4):
        raise ValueError(f"expected [N, C, H, W] or [C, H, W], got shape {list(images.shape)}")
    channels = images.shape[-3]
    if channels not in (1, 3, 4):
        raise ValueError(f"expected 1, 3 or 4 channels, got {channels}")
    x = (images.detach().to(torch.float32) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    x = x.movedim(-3, -1)  # [..., H, W, C]
    return x.cpu().numpy()


def make_grid(images: np.ndarray, cols: int | None = None, pad_value: int = 0) -> np.ndarray:
    """Tile uint8 images [N, H, W, C] into one image [rows * H, cols * W, C], row by row.

    `cols` None = ceil(sqrt(N)) (a near-square grid). Empty cells of the last row get `pad_value`.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images [N, H, W, C], got shape {list(images.shape)}")
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    if cols is None:
        cols = math.ceil(math.sqrt(n))
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    grid = np.full((rows * cols, h, w, c), pad_value, dtype=images.dtype)
    grid[:n] = images
    # [rows, cols, H, W, C] -> [rows, H, cols, W, C] -> [rows * H, cols * W, C].
    return grid.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def save_image(path: str | Path, image: np.ndarray) -> Path:
    """Write one uint8 image [H, W, C] (C = 1, 3 or 4); the format follows the file suffix."""
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image [H, W, 1|3|4], got {image.dtype} {list(image.shape)}")
    path = Path(path)
    pil = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    pil.save(path)
    return path
