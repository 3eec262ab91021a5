"""Face photos -> aligned square face crops, with `tryon.face.align.align_face` (the function the face
projection uses on user photos, so training faces and user faces are cropped alike).

Works on pre-aligned sets (CelebA's `img_align_celeba` is re-aligned, so its crops match ours) and on
unconstrained photos: the largest face of each photo by default, or every face (`which="all"`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from datasets.pipeline import Item, Outcome, Output, encode_image
from tryon.catalog.photos import check_output_options
from tryon.errors import InputError
from tryon.face.align import AlignedFace, NoFaceError, align_face
from tryon.vision.io import ImageLimits, load_image


@dataclasses.dataclass(frozen=True)
class FaceOptions:
    """How face photos become training crops (recorded in report.json)."""

    res: int = 64                       # Output side, px.
    image_format: str = "png"           # "png" or "jpg".
    quality: int = 95                   # JPEG quality (jpg only).
    which: str = "largest"              # "largest" face per photo, or "all" faces.
    min_score: float = 0.5              # Face detector confidence.
    min_coverage: float = 0.8           # Smallest fraction of the crop inside the photo (less: face_cut_off).
    max_upscale: float = 2.0            # Largest enlargement of the face (more: too_small).

    def __post_init__(self) -> None:
        check_output_options(self.res, self.image_format, self.quality)
        if self.which not in ("largest", "all"):
            raise InputError(f"--faces must be 'largest' or 'all', got {self.which!r}")
        if not 0.0 <= self.min_coverage <= 1.0 or not 0.0 <= self.min_score <= 1.0:
            raise InputError("--min-coverage and --min-score must be in [0, 1]")
        if self.max_upscale <= 0:
            raise InputError(f"--max-upscale must be positive, got {self.max_upscale}")

    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def face_problem(face: AlignedFace, options: FaceOptions) -> tuple[str, str] | None:
    """(reason, detail) when an aligned face is not good enough for training, else None."""
    if face.coverage < options.min_coverage:
        return "face_cut_off", f"{face.coverage:.0%} of the crop is inside the photo"
    upscale = options.res / max(face.size, 1e-6)
    if upscale > options.max_upscale:
        return "too_small", f"the face spans {face.size:.0f} px; it would be enlarged {upscale:.1f}x"
    return None


def face_meta(face: AlignedFace) -> dict[str, Any]:
    return {
        "quad": np.round(face.quad, 3).tolist(),
        "transform": np.round(face.transform, 6).tolist(),
        "eyes": np.round(face.eyes, 3).tolist(),
        "mouth": np.round(face.mouth, 3).tolist(),
        "eyes_aligned": np.round(face.to_aligned(face.eyes), 3).tolist(),
        "score": round(face.score, 4),
        "coverage": round(face.coverage, 4),
        "size": round(face.size, 2),
    }


def process_face_item(item: Item, options: FaceOptions) -> Outcome:
    """The worker entry point: decode, align, filter, encode. (See datasets.pipeline.Processor.)"""
    try:
        image = load_image(item.path, limits=ImageLimits(), name=item.key)
    except (InputError, OSError) as exc:
        return Outcome.skip(item.key, "unreadable", str(exc))
    try:
        faces = align_face(image, options.res, options.which, min_score=options.min_score)  # type: ignore[arg-type]
    except NoFaceError:
        return Outcome.skip(item.key, "no_face", f"{image.size[0]}x{image.size[1]} px photo")
    outputs = []
    first_problem: tuple[str, str] | None = None
    for face in faces:
        problem = face_problem(face, options)
        if problem is not None:
            first_problem = first_problem or problem
            continue
        data = encode_image(face.image, options.image_format, options.quality)
        outputs.append(Output(data=data, view=None, meta={"source_size": list(image.size), **face_meta(face)}))
    if not outputs:
        assert first_problem is not None
        return Outcome.skip(item.key, *first_problem)
    return Outcome(key=item.key, outputs=outputs)
