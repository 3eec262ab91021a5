"""Framing a flat product photo like the fashion training images (`datasets/fashion.py`, flat view).

The background colour is estimated from the photo's border; the bounding box of the pixels that
differ from it is centred in the square output, scaled so its longer side spans (1 - 2 * FLAT_MARGIN)
of it (aspect kept). The dataset tools and the garment-transfer pipeline both frame photos this way,
so a user's garment photo meets the generator as the training flats did.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

RGB = tuple[int, int, int]

FLAT_MARGIN = 0.06                      # Margin around the garment, as a fraction of the output side.


def estimate_background(a: np.ndarray, *, border: int = 2) -> tuple[RGB, float]:
    """Background colour of a product photo from its border pixels, and how uniform the border is.

    a: uint8 [H, W, 3]. Returns (median RGB of the outer `border` px, fraction of those pixels
    within 24 levels of it).
    """
    b = max(1, min(border, a.shape[0] // 4, a.shape[1] // 4))
    ring = np.concatenate(
        [a[:b].reshape(-1, 3), a[-b:].reshape(-1, 3), a[:, :b].reshape(-1, 3), a[:, -b:].reshape(-1, 3)]
    ).astype(np.int16)
    colour = np.median(ring, axis=0)
    uniform = float((np.abs(ring - colour).max(axis=1) <= 24).mean())
    return (int(colour[0]), int(colour[1]), int(colour[2])), uniform


def foreground_box(a: np.ndarray, background: RGB, *, threshold: int = 24) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1), px, of the pixels that differ from `background` by more than
    `threshold` levels in some channel, ignoring specks (JPEG noise, dust) of a pixel or two.
    None when there is no foreground."""
    diff = np.abs(a.astype(np.int16) - np.array(background, dtype=np.int16)).max(axis=2)
    mask = Image.fromarray(((diff > threshold) * 255).astype(np.uint8)).filter(ImageFilter.MinFilter(3))
    box = mask.getbbox()
    if box is None:
        return None
    x0, y0, x1, y1 = box  # Undo the erosion's 1 px.
    return max(0, x0 - 1), max(0, y0 - 1), min(a.shape[1], x1 + 1), min(a.shape[0], y1 + 1)


def box_frame_transform(box: tuple[int, int, int, int], res: int, margin: float = FLAT_MARGIN) -> np.ndarray:
    """The transform M [2, 3] (source px -> output px) that centres `box` in a res x res output with
    its longer side spanning (1 - 2 * margin) of it."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1)
    scale = res * (1.0 - 2.0 * margin) / side
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[scale, 0.0, res / 2 - scale * cx], [0.0, scale, res / 2 - scale * cy]])
