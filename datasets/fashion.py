"""`tryon dataset fashion`'s processor: one catalog photo file -> one encoded training image.

What happens to a photo (view detection, pose normalization of on-model shots, framing of flats) is
`tryon.catalog.photos`, which the shop's product import shares; this module decodes the file, runs
it and encodes the result, and measures landmarks for the benchmark and tests.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from datasets.pipeline import Item, Outcome, Output, encode_image
from tryon.catalog.photos import (
    FLAT_MARGIN,
    HEADLESS_REASONS,
    VIEWS,
    FashionImage,
    FashionOptions,
    canonical_points,
    confident_faces,
    detect_view,
    estimate_background,
    foreground_box,
    prepare_fashion_image,
)
from tryon.errors import InputError
from tryon.vision import detectors
from tryon.vision.detectors import PoseLandmark
from tryon.vision.io import ImageLimits, load_image
from tryon.vision.warp import transform_points

__all__ = [
    "FLAT_MARGIN",
    "HEADLESS_REASONS",
    "VIEWS",
    "FashionImage",
    "FashionOptions",
    "canonical_points",
    "confident_faces",
    "detect_view",
    "estimate_background",
    "foreground_box",
    "measure_landmarks",
    "prepare_fashion_image",
    "process_fashion_item",
]


def process_fashion_item(item: Item, options: FashionOptions) -> Outcome:
    """The worker entry point: decode, prepare, encode. (See datasets.pipeline.Processor.)"""
    try:
        image = load_image(item.path, limits=ImageLimits(), name=item.key)
    except (InputError, OSError) as exc:
        return Outcome.skip(item.key, "unreadable", str(exc))
    result = prepare_fashion_image(image, options, view=item.view)
    if result.image is None:
        assert result.reason is not None
        return Outcome.skip(item.key, result.reason, result.detail, view=result.view)
    data = encode_image(result.image, options.image_format, options.quality)
    return Outcome(key=item.key, outputs=[Output(data=data, view=result.view, meta=result.meta)])


def measure_landmarks(image: Image.Image, *, upsample: int = 2) -> dict[str, list[float]] | None:
    """Shoulder / hip midpoints and nose measured by mediapipe pose on an image, px of that image
    (used by the benchmark and tests to check the normalization). The image is enlarged `upsample`x
    first, so small outputs get the detector's full resolution."""
    big = image.resize((image.width * upsample, image.height * upsample), Image.Resampling.BICUBIC)
    pose = detectors.detect_pose(np.asarray(big.convert("RGB")))
    if pose is None:
        return None
    xy = transform_points(np.array([[1.0 / upsample, 0, 0], [0, 1.0 / upsample, 0]]), pose.xy)
    vis = pose.visibility
    return {
        "shoulder_mid": ((xy[PoseLandmark.LEFT_SHOULDER] + xy[PoseLandmark.RIGHT_SHOULDER]) / 2).tolist(),
        "hip_mid": ((xy[PoseLandmark.LEFT_HIP] + xy[PoseLandmark.RIGHT_HIP]) / 2).tolist(),
        "nose": xy[PoseLandmark.NOSE].tolist(),
        "visibility": [float(vis[i]) for i in (11, 12, 23, 24)],
    }
