"""An edit of the face generator, applied to the shopper's own photo.

The face generator renders 64² faces: pasted as they are, a face-recognition network no longer
recognises the person (bench_tryon's identity section). So a try-on keeps the photo: the selfie
aligned at its own resolution (`tryon.face.align.photo_res`, up to 512 px) is the face, and an edit
is rendered as the change the generator makes,

    out = photo + M · (E↑ − R↑ − w · HP(photo − R↑))

where R is the generator's reconstruction of the photo (the projected latent rendered), E the edited
latent rendered, ↑ upsampling to the photo's side, M the face region (the aligned layout's face oval,
widened and feathered) and HP a high-pass (the photo's detail above the generator's resolution).
Where the edit makes new structure (teeth of a smile, the frames of glasses: the change is large),
w → 1 and the photo's own detail there is dropped, so the generator's pixels take over; elsewhere
(w = 0) the photo keeps every pixel and only the generator's change is added. With no edit
(E = R) the output is the photo itself.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from tryon.composite.locate import ALIGNED_FACE_OVAL

__all__ = ["PhotoEdit", "apply_edit_to_photo", "face_region"]

# Change (mean |E − R| over RGB, 0..1 scale, at the generator's resolution, blurred) below which the
# photo keeps its detail, and above which the generator's pixels replace it (linear in between).
STRUCTURE_LOW = 0.08
STRUCTURE_HIGH = 0.22
REGION_GROW = 1.12          # The face oval, widened about its centre (the edit reaches the jaw, brows).
REGION_FEATHER = 0.03       # Feather of its edge, fraction of the side.
DETAIL_SIGMA = 0.6          # High-pass cut: a Gaussian of this many generator pixels.


@dataclasses.dataclass
class PhotoEdit:
    """What `apply_edit_to_photo` made."""

    image: Image.Image          # The edited photo, RGB, the photo's size.
    change: float               # Mean |E − R| inside the face region (0..1 scale): how much the edit moves.
    structure: float            # Share of the face region where the generator's pixels took over (w > 0.5).


def face_region(side: int) -> np.ndarray:
    """float32 [side, side] in [0, 1]: the face region of an FFHQ-aligned crop (the median face oval
    of aligned real faces, widened by REGION_GROW and feathered)."""
    import cv2

    oval = ALIGNED_FACE_OVAL * side
    centre = oval.mean(axis=0)
    grown = centre + (oval - centre) * REGION_GROW
    mask = np.zeros((side, side), dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.round(grown - 0.5).astype(np.int32), (255,), lineType=cv2.LINE_AA)
    sigma = max(0.5, REGION_FEATHER * side)
    return np.asarray(cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigmaX=sigma, sigmaY=sigma))


def _float(image: Image.Image) -> np.ndarray:
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    return np.asarray(rgb, dtype=np.float32) / 255.0


def apply_edit_to_photo(
    photo: Image.Image,             # The aligned photo, RGB S x S (S up to 512).
    reconstruction: Image.Image,    # The generator's rendering of the photo's latent, RGB r x r (64²).
    edited: Image.Image,            # The generator's rendering of the edited latent, RGB r x r.
    *,
    structure: tuple[float, float] = (STRUCTURE_LOW, STRUCTURE_HIGH),  # Change where w starts, reaches 1.
) -> PhotoEdit:
    """The generator's change (edited − reconstruction), applied to the photo (see the module docstring)."""
    import cv2

    if photo.size[0] != photo.size[1]:
        raise ValueError(f"the aligned photo must be square, got {photo.size}")
    if reconstruction.size != edited.size:
        raise ValueError(f"reconstruction {reconstruction.size} and edit {edited.size} differ in size")
    side, res = photo.size[0], reconstruction.size[0]
    p = _float(photo)
    r, e = _float(reconstruction), _float(edited)
    delta = e - r
    region = face_region(side)
    if not np.any(delta):
        return PhotoEdit(image=photo.convert("RGB"), change=0.0, structure=0.0)

    def up(a: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.resize(a, (side, side), interpolation=cv2.INTER_CUBIC), dtype=np.float32)

    # Where the change is large: blurred at the generator's scale, then upsampled.
    magnitude = np.abs(delta).mean(axis=2)
    magnitude = np.asarray(cv2.GaussianBlur(magnitude, (0, 0), sigmaX=1.0, sigmaY=1.0))
    lo, hi = structure
    w = up(np.clip((magnitude - lo) / max(hi - lo, 1e-6), 0.0, 1.0)[..., None].repeat(3, axis=2))[..., 0]
    w = np.clip(w, 0.0, 1.0)
    r_up = up(r)
    residual = p - r_up
    sigma = DETAIL_SIGMA * side / res
    detail = residual - np.asarray(cv2.GaussianBlur(residual, (0, 0), sigmaX=sigma, sigmaY=sigma))
    change = up(delta) - w[..., None] * detail
    out = np.clip(p + region[..., None] * change, 0.0, 1.0)
    inside = region > 0.5
    image = Image.fromarray(np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), "RGB")
    mean_change = float(np.abs(delta).mean(axis=2)[cv2.resize(inside.astype(np.uint8), (res, res)) > 0].mean())
    return PhotoEdit(image=image, change=mean_change, structure=float((w[inside] > 0.5).mean()))
