"""Catalog photos -> pose-normalized (on-model) or centred (flat) square images (training data, shop products).

View: a photo is `on_model` when a person wears the item. mediapipe decides: a confident face, or
(for headless shots such as trousers worn from the waist down) a confident hand. Pose landmarks
alone cannot decide it: the pose model happily fits a skeleton to a T-shirt or a shoe.

On-model photos: the mediapipe pose gives the shoulder and hip midpoints; the similarity transform
that puts them at CANONICAL_SHOULDER and CANONICAL_HIP (fractions of the output side) makes the
image. So every kept model stands at the same place, at the same scale, upright. Output areas
outside the photo take the background colour. `whiten_background` replaces everything that selfie
segmentation does not call "person" by white.

Flat photos: the background colour is estimated from the photo's border; the bounding box of the
pixels that differ from it is centred in the square output, scaled so its longer side spans
(1 - 2 * FLAT_MARGIN) of it (aspect kept).

Headless on-model photos (no face, hands seen) that the pose cannot place, in practice the catalog's
waist-to-feet shots of trousers, jeans and leggings (about 1 in 10 on-model apparel photos), have no
shoulders to normalize; by default they are framed by their bounding box like flats (metadata
"frame": "box", against "pose"), so on-model bottoms are not lost; `headless="skip"` drops them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from PIL import Image

from tryon.errors import InputError
from tryon.vision import detectors
from tryon.vision.detectors import PoseLandmark
from tryon.vision.framing import FLAT_MARGIN, box_frame_transform, estimate_background, foreground_box
from tryon.vision.model_frame import CANONICAL_HIP, CANONICAL_SHOULDER
from tryon.vision.warp import coverage, similarity_from_points, transform_scale, warp_image

RGB = tuple[int, int, int]

# Where the shoulder and hip midpoints land (fractions of the output side): tryon.vision.model_frame,
# which the face compositor shares.
VIEWS = ("flat", "on_model")
# Why a headless on-model photo (no face; hands seen) could not be pose-normalized, for which it is
# framed by its bounding box instead (FashionOptions.headless == "box").
HEADLESS_REASONS = frozenset({"no_person", "low_visibility", "pose_inconsistent", "extreme_crop"})


def check_output_options(res: int, image_format: str, quality: int) -> None:
    """Validate the output options every dataset verb shares (InputError names the flag)."""
    if res < 8:
        raise InputError(f"--res must be at least 8, got {res}")
    if image_format not in ("png", "jpg"):
        raise InputError(f"--format must be png or jpg, got {image_format!r}")
    if not 1 <= quality <= 100:
        raise InputError(f"--quality must be in 1..100, got {quality}")


@dataclasses.dataclass(frozen=True)
class FashionOptions:
    """How catalog photos become training images (the CLI's flags, recorded in report.json)."""

    res: int = 128                      # Output side, px.
    image_format: str = "png"           # "png" or "jpg".
    quality: int = 95                   # JPEG quality (jpg only).
    views: tuple[str, ...] = VIEWS      # Views to keep; photos of other views are skipped.
    background: RGB | None = None       # Fill colour; None = estimated from each photo's border.
    whiten_background: bool = False     # On-model: replace the non-person area by white (selfie segmentation).
    face_score: float = 0.8             # Face detector confidence that makes a photo on-model.
    hand_score: float = 0.8             # Hand confidence that makes a headless photo on-model.
    min_visibility: float = 0.5         # Smallest pose visibility of shoulders and hips (and nose with a face).
    min_coverage: float = 0.5           # Smallest fraction of the output that the photo covers.
    max_upscale: float = 2.0            # Largest enlargement of the photo (more: too_small).
    min_side: int = 32                  # Smallest photo width or height, px.
    max_rotation: float = 45.0          # Largest torso tilt that is straightened, degrees.
    headless: str = "box"               # On-model shots without head or pose (legs only): "box" = centre the
                                        #   person's bounding box like a flat; "skip" = drop them (low_visibility).

    def __post_init__(self) -> None:
        check_output_options(self.res, self.image_format, self.quality)
        bad = [v for v in self.views if v not in VIEWS]
        if bad or not self.views:
            got = ", ".join(self.views) or "nothing"
            raise InputError(f"--views must be a subset of {', '.join(VIEWS)}, got {got}")
        for name in ("face_score", "hand_score", "min_visibility", "min_coverage"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_upscale <= 0:
            raise InputError(f"--max-upscale must be positive, got {self.max_upscale}")
        if self.headless not in ("box", "skip"):
            raise InputError(f"--headless must be box or skip, got {self.headless!r}")

    def settings(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["views"] = list(self.views)
        d["canonical_shoulder"] = list(CANONICAL_SHOULDER)
        d["canonical_hip"] = list(CANONICAL_HIP)
        return d


@dataclasses.dataclass
class FashionImage:
    """A prepared image, or the reason there is none."""

    image: Image.Image | None           # res x res RGB, None when skipped.
    view: str | None                    # "flat" / "on_model" (None if unreadable).
    reason: str | None = None           # A reason code when skipped (datasets.pipeline.REASONS).
    detail: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def canonical_points(res: int) -> np.ndarray:
    """[2, 2] output px of the shoulder midpoint and the hip midpoint."""
    return np.array([CANONICAL_SHOULDER, CANONICAL_HIP], dtype=np.float64) * res


def confident_faces(a: np.ndarray, options: FashionOptions) -> list[detectors.FaceDetection]:
    """Faces with at least options.face_score confidence and 3% of the photo's side, largest first."""
    h, w = a.shape[:2]
    faces = [
        f
        for f in detectors.detect_faces(a, model="both", min_score=0.5)
        if f.score >= options.face_score and f.size >= 0.03 * min(h, w)
    ]
    return sorted(faces, key=lambda f: -f.size)


def detect_view(a: np.ndarray, options: FashionOptions) -> tuple[str, list[detectors.FaceDetection], int]:
    """("on_model" | "flat", the confident faces largest first, number of confident hands)."""
    faces = confident_faces(a, options)
    if faces:
        return "on_model", faces, 0
    hands = [hd for hd in detectors.detect_hands(a, max_hands=2, min_score=0.5) if hd.score >= options.hand_score]
    return ("on_model" if hands else "flat"), [], len(hands)


def prepare_fashion_image(image: Image.Image, options: FashionOptions, *, view: str | None = None) -> FashionImage:
    """One catalog photo -> a normalized square image (or the reason it cannot be one).

    image: an upright RGB photo.
    view: the view if known ("flat" / "on_model"), None = detect it.
    """
    if min(image.size) < options.min_side:
        return FashionImage(None, view, "too_small", f"{image.size[0]}x{image.size[1]} px")
    a = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    bg_est, _ = estimate_background(a)
    fill = options.background or bg_est
    faces: list[detectors.FaceDetection] = []
    evidence: dict[str, Any] = {}
    if view is None:
        view, faces, hands = detect_view(a, options)
        evidence = {"faces": len(faces), "hands": hands}
    elif view == "on_model":
        faces = confident_faces(a, options)
    if view not in options.views:
        if view == "flat":
            return FashionImage(None, view, "no_person", "no face or hands found")
        return FashionImage(None, view, "view_excluded", f"view {view}")
    if view == "flat":
        return _box_normalize(image, a, bg_est, fill, options, evidence, view="flat")
    result = _pose_normalize(image, a, faces, fill, options, evidence)
    headless = not faces and bool(evidence.get("hands"))  # A person seen by the hands only.
    if result.image is None and headless and options.headless == "box" and result.reason in HEADLESS_REASONS:
        boxed = _box_normalize(image, a, bg_est, fill, options, evidence, view="on_model")
        if boxed.image is not None:
            boxed.meta["pose_skipped"] = f"{result.reason}: {result.detail}"
            return boxed
    return result


def _pose_normalize(
    image: Image.Image,
    a: np.ndarray,
    faces: list[detectors.FaceDetection],
    background: RGB,
    options: FashionOptions,
    evidence: dict[str, Any],
) -> FashionImage:
    res = options.res
    view = "on_model"
    if len(faces) >= 2 and faces[1].size >= 0.5 * faces[0].size:
        return FashionImage(None, view, "several_people", f"{len(faces)} faces")
    pose = detectors.detect_pose(a)
    if pose is None:
        person_seen = bool(faces) or bool(evidence.get("hands"))
        return FashionImage(None, view, "low_visibility" if person_seen else "no_person", "no body landmarks found")
    needed = [PoseLandmark.LEFT_SHOULDER, PoseLandmark.RIGHT_SHOULDER, PoseLandmark.LEFT_HIP, PoseLandmark.RIGHT_HIP]
    vis = pose.min_visibility(needed + ([PoseLandmark.NOSE] if faces else []))
    if vis < options.min_visibility:
        return FashionImage(None, view, "low_visibility", f"visibility {vis:.2f}")
    h, w = a.shape[:2]
    pts = pose.xy[needed]
    tol = 0.05 * max(h, w)
    if (pts < -tol).any() or (pts[:, 0] > w + tol).any() or (pts[:, 1] > h + tol).any():
        return FashionImage(None, view, "low_visibility", "shoulders or hips outside the photo")
    shoulder, hip = pose.shoulder_mid, pose.hip_mid
    nose = pose.point(PoseLandmark.NOSE)
    torso = hip - shoulder
    torso_len = float(np.hypot(*torso))
    tilt = float(np.degrees(np.arctan2(torso[0], torso[1])))  # 0 = hips straight below the shoulders.
    width = float(np.hypot(*(pose.xy[PoseLandmark.LEFT_SHOULDER] - pose.xy[PoseLandmark.RIGHT_SHOULDER])))
    if torso_len < 1.0 or abs(tilt) > options.max_rotation:
        return FashionImage(None, view, "pose_inconsistent", f"torso tilted {tilt:.0f} degrees")
    if not 0.3 <= width / torso_len <= 1.6:
        return FashionImage(None, view, "pose_inconsistent", f"shoulder width / torso length {width / torso_len:.2f}")
    if faces:
        x0, y0, x1, y1 = faces[0].box
        mx, my = 0.5 * (x1 - x0), 0.5 * (y1 - y0)
        if not (x0 - mx <= nose[0] <= x1 + mx and y0 - my <= nose[1] <= y1 + my):
            return FashionImage(None, view, "pose_inconsistent", "the body landmarks are not on the face's person")
        if float(np.dot(nose - shoulder, torso)) > 0:
            return FashionImage(None, view, "pose_inconsistent", "the nose is below the shoulders")
    M = similarity_from_points(np.stack([shoulder, hip]), canonical_points(res))
    scale = transform_scale(M)
    if scale > options.max_upscale:
        return FashionImage(None, view, "too_small", f"the person would be enlarged {scale:.1f}x")
    cov = coverage(M, image.size, (res, res))
    if cov < options.min_coverage:
        return FashionImage(None, view, "extreme_crop", f"the photo covers {cov:.0%} of the frame")
    out = warp_image(image, M, (res, res), fill=(255, 255, 255) if options.whiten_background else background)
    if options.whiten_background:
        mask = Image.fromarray(np.rint(detectors.segment_person(a) * 255).astype(np.uint8))
        alpha = _warp_mask(mask, M, res)
        white = Image.new("RGB", (res, res), (255, 255, 255))
        out = Image.composite(out, white, alpha)
    meta = {
        "view": view,
        "frame": "pose",
        "source_size": list(image.size),
        "transform": np.round(M, 6).tolist(),
        "shoulder_mid": np.round(shoulder, 3).tolist(),
        "hip_mid": np.round(hip, 3).tolist(),
        "nose": np.round(nose, 3).tolist(),
        "visibility": round(vis, 4),
        "coverage": round(cov, 4),
        "tilt": round(tilt, 2),
        **evidence,
    }
    return FashionImage(out, view, meta=meta)


def _box_normalize(
    image: Image.Image,
    a: np.ndarray,
    background: RGB,
    fill: RGB,
    options: FashionOptions,
    evidence: dict[str, Any],
    *,
    view: str,
) -> FashionImage:
    """Centre the foreground's bounding box (a flat garment, or a headless model).

    background: the photo's own background colour (to find the foreground); fill: the output's.
    """
    res = options.res
    box = foreground_box(a, background)
    if box is None:
        return FashionImage(None, view, "no_foreground", f"uniform {background}")
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    if side < 4:
        return FashionImage(None, view, "no_foreground", f"foreground of {x1 - x0}x{y1 - y0} px")
    M = box_frame_transform(box, res, FLAT_MARGIN)
    scale = float(M[0, 0])
    if scale > options.max_upscale:
        return FashionImage(None, view, "too_small", f"the garment would be enlarged {scale:.1f}x")
    h, w = a.shape[:2]
    touches = sum([x0 <= 0, y0 <= 0, x1 >= w, y1 >= h])
    if touches >= 3 and (x1 - x0) * (y1 - y0) >= 0.98 * w * h:
        return FashionImage(None, view, "extreme_crop", "the garment fills the whole photo (cut off on 3+ sides)")
    out = warp_image(image, M, (res, res), fill=fill)
    meta = {
        "view": view,
        "frame": "box",
        "source_size": list(image.size),
        "transform": np.round(M, 6).tolist(),
        "box": [int(x0), int(y0), int(x1), int(y1)],
        "background": list(background),
        **evidence,
    }
    return FashionImage(out, view, meta=meta)


def _warp_mask(mask: Image.Image, M: np.ndarray, res: int) -> Image.Image:
    """Warp a single-channel mask like the image (outside the photo: 0 = not the person)."""
    rgb = warp_image(mask.convert("RGB"), M, (res, res), fill=(0, 0, 0))
    return rgb.getchannel(0)
