"""The pose-normalized on-model frame: where the fashion dataset puts a model's body and head.

`datasets.fashion` warps every on-model catalog photo by the similarity that puts the shoulder and
hip midpoints at CANONICAL_SHOULDER and CANONICAL_HIP (fractions of the square output side), so the
fashion generator draws its models there too. The head then sits at a known place: CANONICAL_EYES
and CANONICAL_MOUTH are the medians of mediapipe face-mesh keypoints measured on 498 of 500 random
pose-normalized on-model images of `data/fashion128.zip` (upscaled 4x for the mesh), made
left-right symmetric (the generator is trained with x-flips; individual heads sit about 0.03 to
either side). The face compositor falls back to them when it cannot find a face on a generated
model (a small or blurry generation).

Measured spread (interquartile range): eye y 0.118..0.140, eye-eye distance 0.067..0.083 (10th to
90th percentile).
"""

from __future__ import annotations

import numpy as np

# Shoulder and hip midpoints, as (x, y) fractions of the output side. Chosen from the median catalog
# photo (head to mid-thigh): the head stays in frame, the torso fills the middle.
CANONICAL_SHOULDER = (0.5, 0.32)
CANONICAL_HIP = (0.5, 0.82)

# Eye centres and mouth corners, (x, y) fractions of the side, image-left first (the person's right).
CANONICAL_EYES = ((0.4632, 0.128), (0.5368, 0.128))
CANONICAL_MOUTH = ((0.4724, 0.190), (0.5276, 0.190))


def canonical_head_keypoints(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Eyes [2, 2] and mouth corners [2, 2] in px of a pose-normalized image of `size` = (W, H).

    The frame is square; a non-square image is taken to be a square one resized (each axis scaled).
    """
    scale = np.array([float(size[0]), float(size[1])])
    eyes = np.array(CANONICAL_EYES, dtype=np.float64) * scale
    mouth = np.array(CANONICAL_MOUTH, dtype=np.float64) * scale
    return eyes, mouth
