"""Face compositing: paste a (rendered, edited) aligned face onto a model image.

`composite_face(face_image, model_image)` does, in order (each step timed in `result.timings`):

1. upscale: a small model image (a 64² generation) is enlarged (Lanczos) so its longer side is at
   least `min_side` px, so the pasted face is not a thumbnail;
2. locate: mediapipe's face detector + face mesh (`tryon.face.align.find_faces`) find the model's
   face. A generated, pose-normalized model whose face the mesh cannot find (small, blurry) falls back
   to the head position of the pose-normalized frame (`tryon.vision.model_frame`), and the result says
   so (`result.located == "canonical"`). A photo with no usable face raises NoUsableFaceError;
3. landmarks of the face image: the face mesh on the (upscaled) face, when it agrees with the aligned
   layout; otherwise the layout itself (an FFHQ-aligned crop puts the eyes and mouth at fixed places,
   ALIGNED_KEYPOINTS, measured on real aligned faces);
4. warp: the least-squares similarity (or affine) from the face's eyes, mouth corners and nose tip
   onto the model's;
5. mask: the model's face-mesh oval (or the face image's oval warped, without a mesh), shrunk a
   little and feathered;
6. colour: per-channel mean/std transfer in CIE Lab inside the skin region (the inner face), from the
   pasted face to the model's face, with the gain clamped so a dark or odd target cannot wreck it
   (half strength at a canonical head position, where the region may not be skin);
7. blend: Laplacian-pyramid blending (default), Poisson (`cv2.seamlessClone`), plain feathered alpha,
   or a hard paste (`blend="paste"`, the naive baseline the benchmark compares against).

All work after the landmarks happens in a crop around the face, so a 768×1024 photo costs about as
much as a 512² one. Coordinates are continuous pixel coordinates (see tryon.vision.io).

Steps 1-4 are in `locate.py`, steps 5-7 (and `seam_metrics`) in `blend.py`; `photo_edit.py` moves a
generator edit onto a photo.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
from PIL import Image

from tryon.composite.blend import (
    BLEND_MODES,
    Blend,
    blend_face,
    face_mask,
    laplacian_blend,
    match_colour,
    match_face_colour,
    seam_metrics,
)
from tryon.composite.locate import (
    ALIGNED_FACE_OVAL,
    ALIGNED_KEYPOINTS,
    FaceKeypoints,
    ModelFace,
    NoUsableFaceError,
    WarpedFace,
    face_image_keypoints,
    locate_model_face,
    mesh_keypoints,
    upscale_model,
    warp_face,
)
from tryon.errors import InputError
from tryon.vision.warp import transform_points

__all__ = [
    "ALIGNED_FACE_OVAL",
    "ALIGNED_KEYPOINTS",
    "BLEND_MODES",
    "CompositeResult",
    "NoUsableFaceError",
    "composite_face",
    "laplacian_blend",
    "match_colour",
    "mesh_keypoints",
    "seam_metrics",
]


@dataclasses.dataclass
class CompositeResult:
    """What `composite_face` made, and how well.

    Every coordinate is in px of `image` (the model image after upscaling).
    """

    image: Image.Image          # The composite, RGB, the model image's size times `scale`.
    mask: Image.Image           # Blend weight of the pasted face, "L" (255 = face), same size.
    located: str                # How the model's face was found: "face_mesh" or "canonical" (the
                                #   pose-normalized head position of a generated model).
    transform: np.ndarray       # [2, 3] float64: face image px -> output px.
    target_keypoints: np.ndarray  # [5, 2] where the face's keypoints were aimed: eyes, mouth corners, nose.
    face_keypoints: np.ndarray  # [5, 2] the face image's keypoints, in face image px.
    scale: float                # Upscaling applied to the model image (1 = none).
    notes: list[str] = dataclasses.field(default_factory=list)   # What a person should know.
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # Seconds per step.


def composite_face(
    face_image: Image.Image,
    model_image: Image.Image,
    *,
    face_landmarks: np.ndarray | None = None,
    model_landmarks: np.ndarray | None = None,
    generated: bool = False,
    min_side: int = 512,
    blend: Blend = "laplacian",
    warp: Literal["similarity", "affine"] = "similarity",
    colour_strength: float = 1.0,
    canonical_colour_strength: float = 0.5,
    shrink: float = 0.04,
    feather: float = 0.05,
) -> CompositeResult:
    """Paste an aligned face onto the face of a model image; see the module docstring for the steps.

    face_image:      the face to paste, RGB: an FFHQ-aligned crop (a `render_face` output, or
                     `align_face(...).image`), any size.
    model_image:     the model, RGB: a real photo or a generated on-model image.
    face_landmarks:  the face image's landmarks in its px, [5, 2] keypoints (eyes, mouth corners,
                     nose tip; image-left first) or a face mesh [>=468, 2]. None = the face mesh on the
                     face image, or the aligned layout where the mesh finds nothing.
    model_landmarks: the model's face mesh [>=468, 2] in model image px (before upscaling); None = detect.
    generated:       the model image is a generated, pose-normalized on-model image (fashion G,
                     view on_model): when no face is found, the canonical head position is used.
                     False (a photo): no face -> NoUsableFaceError.
    min_side:        a model image whose longer side is smaller is upscaled to it first, px.
    blend:           "laplacian" (multi-band), "poisson", "alpha" (feathered mask), "paste" (hard, no
                     colour match: the naive baseline).
    warp:            "similarity" (no shear: the face keeps its shape) or "affine".
    colour_strength: 0..1, how far the face's colour moves to the model's skin.
    canonical_colour_strength: the same when the face was placed at the canonical head position:
                     what lies under it there may be hair, a hat or background rather than skin, and a
                     full transfer then darkens or tints the face (bench_tryon: at 1.0 the face mesh
                     re-finds the pasted face on half the generated composites only).
    shrink, feather: the mask is shrunk by `shrink` and blurred by `feather`, fractions of the face
                     size (the face oval's diagonal extent).

    Raises NoUsableFaceError (InputError) when the photo has no usable face (none, too small, turned away).
    """
    _check_options(blend, warp, colour_strength, canonical_colour_strength, min_side)
    timings: dict[str, float] = {}
    face = face_image.convert("RGB") if face_image.mode != "RGB" else face_image
    model = model_image.convert("RGB") if model_image.mode != "RGB" else model_image

    with _timed(timings, "upscale"):
        model, scale = upscale_model(model, min_side)
    with _timed(timings, "locate"):
        target = locate_model_face(model, model_landmarks, scale=scale, generated=generated)
    with _timed(timings, "face_landmarks"):
        source = face_image_keypoints(face, face_landmarks)
    with _timed(timings, "warp"):
        warped = warp_face(face, model, source, target, warp)
    with _timed(timings, "mask"):
        hard, alpha = face_mask(
            warped.oval, warped.covered,
            # The model's face oval (the warped face's without a mesh), inside the warped face's own.
            clip_oval=transform_points(warped.crop_transform, source.oval) if target.mesh is not None else None,
            hard_edge=blend == "paste", shrink=shrink * warped.extent, feather=feather * warped.extent,
        )
    with _timed(timings, "colour"):
        strength = (
            0.0 if blend == "paste" else colour_strength if target.located == "face_mesh" else canonical_colour_strength
        )
        fg, colour_stats = match_face_colour(
            warped.face, warped.background, hard, extent=warped.extent, strength=strength
        )
    with _timed(timings, "blend"):
        out_arr, mask_full = blend_face(model, fg, warped.background, alpha, warped.box, blend)
    timings["total"] = float(sum(timings.values()))

    return CompositeResult(
        image=Image.fromarray(out_arr),
        mask=Image.fromarray(mask_full),
        located=target.located,
        transform=warped.transform,
        target_keypoints=target.keypoints,
        face_keypoints=source.keypoints,
        scale=scale,
        notes=target.notes,
        metrics=_metrics(target, source, warped, scale, mask_full, colour_stats, strength, blend),
        timings=timings,
    )


def _check_options(
    blend: str, warp: str, colour_strength: float, canonical_colour_strength: float, min_side: int
) -> None:
    if blend not in BLEND_MODES:
        raise InputError(f"blend must be one of {', '.join(BLEND_MODES)}, got {blend!r}")
    if warp not in ("similarity", "affine"):
        raise InputError(f"warp must be 'similarity' or 'affine', got {warp!r}")
    for name, value in (("colour_strength", colour_strength), ("canonical_colour_strength", canonical_colour_strength)):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"{name} must be in [0, 1], got {value}")
    if min_side < 1:
        raise InputError(f"min_side must be positive, got {min_side}")


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Record the seconds the block takes as timings[step]."""
    t0 = time.perf_counter()
    yield
    timings[step] = time.perf_counter() - t0


def _metrics(
    target: ModelFace,
    source: FaceKeypoints,
    warped: WarpedFace,
    scale: float,
    mask_full: np.ndarray,
    colour_stats: dict[str, float],
    strength: float,
    blend: str,
) -> dict[str, Any]:
    """`CompositeResult.metrics`: how the face was found and placed, and what the colour match did."""
    M, src_kp, target_kp = warped.transform, source.keypoints, target.keypoints
    eye_dist = float(np.hypot(*(target_kp[1] - target_kp[0])))
    return {
        "located": target.located,
        "face_landmarks": source.source,
        "faces_found": target.faces_found,
        "upscale": round(scale, 4),
        "eye_distance_px": round(eye_dist, 2),
        "face_scale": round(float(np.sqrt(abs(np.linalg.det(M[:, :2])))), 4),
        "fit_residual_px": round(float(np.sqrt(np.mean(np.sum((transform_points(M, src_kp) - target_kp) ** 2, 1)))), 3),
        "mask_fraction": round(float((mask_full > 127).mean()), 5),
        "colour_delta_e_before": round(colour_stats["delta_e_before"], 3),
        "colour_delta_e_after": round(colour_stats["delta_e_after"], 3),
        "colour_strength": strength,
        "blend": blend,
        "crop": list(warped.box),
    }
