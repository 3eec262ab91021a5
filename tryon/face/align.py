"""Face alignment: a photo -> FFHQ-style oriented square crops of its faces.

The face dataset tool, the face projection and the API all call `align_face`, so a user's selfie is
cropped exactly like the training faces were.

How: mediapipe's face detector (short- and full-range models) finds the faces; each is cropped with
context and passed to the face mesh, whose eye contours and mouth corners give the FFHQ crop
(Karras et al., the `recreate_aligned_images` recipe of the FFHQ dataset): the crop is centred a
little below the eyes, oriented along the eye-eye and eye-mouth axes, and its side is the larger of
4x the eye distance and 3.6x the eye-to-mouth distance. Parts of the crop outside the photo are
filled by FFHQ's blurred reflection padding.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
from PIL import Image

from tryon.errors import InputError
from tryon.vision import detectors
from tryon.vision.warp import (
    coverage,
    invert_transform,
    similarity_from_points,
    transform_points,
    warp_image,
)

# Face mesh landmark indices. "Right"/"left" are the person's; the person's right eye is on the
# image's left in a photo that is not mirrored.
RIGHT_EYE_CONTOUR = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)
LEFT_EYE_CONTOUR = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
MOUTH_RIGHT_CORNER = 61
MOUTH_LEFT_CORNER = 291

# The face mesh runs on a square crop around each detection: side = CONTEXT x the detector box,
# resized to MESH_INPUT px.
CONTEXT = 2.0
MESH_INPUT = 256

# The high-resolution aligned crop a try-on keeps of the shopper's photo (`photo_res`): the FFHQ crop
# at the photo's own scale, at most this many px (a 250 px LFW photo gives ~180 px, a selfie 512).
MAX_PHOTO_RES = 512
MIN_PHOTO_RES = 64
ALIGN_RES = 256                 # Side of the aligned crop that is projected (the API stores the same), px.


class NoFaceError(InputError):
    """No usable face in the image (the API answers 422)."""


@dataclasses.dataclass(frozen=True)
class AlignedFace:
    """One aligned face. Coordinates are continuous pixel coordinates (see tryon.vision.io)."""

    image: Image.Image      # The aligned crop, RGB, res x res.
    quad: np.ndarray        # [4, 2] float64 crop corners in the source photo, px: top-left, bottom-left,
                            #   bottom-right, top-right (FFHQ's order); a rotated square.
    transform: np.ndarray   # [2, 3] float64 similarity: source px -> aligned px (see tryon.vision.warp).
    landmarks: np.ndarray   # [478, 2] float64 face mesh landmarks in the source photo, px.
    eyes: np.ndarray        # [2, 2] float64 eye centres in the source, px: [image-left eye, image-right eye].
    mouth: np.ndarray       # [2, 2] float64 mouth corners in the source, px: [image-left, image-right].
    score: float            # Face detector confidence in [0, 1].
    coverage: float         # Fraction of the crop that lies inside the photo (1 = no padding).

    @property
    def res(self) -> int:
        return self.image.size[0]

    @property
    def size(self) -> float:
        """Side of the crop in the source photo, px (how many source pixels the face spans)."""
        return float(np.linalg.norm(self.quad[3] - self.quad[0]))

    @property
    def eye_center(self) -> np.ndarray:
        """[2] midpoint of the two eyes in the source, px."""
        return self.eyes.mean(axis=0)

    @property
    def inverse_transform(self) -> np.ndarray:
        """[2, 3] aligned px -> source px (to paste an edited face back into the photo)."""
        return invert_transform(self.transform)

    def to_aligned(self, points: np.ndarray) -> np.ndarray:
        """Source px [..., 2] -> aligned px [..., 2]."""
        return transform_points(self.transform, points)

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Aligned px [..., 2] -> source px [..., 2]."""
        return transform_points(self.inverse_transform, points)


def photo_res(face: AlignedFace, max_res: int = MAX_PHOTO_RES) -> int:
    """Side of the aligned crop that keeps the photo's own detail: the crop's size in the source photo
    (no upsampling), clamped to [MIN_PHOTO_RES, max_res] px."""
    return int(min(max_res, max(MIN_PHOTO_RES, round(face.size))))


def realign(
    image: Image.Image, face: AlignedFace, res: int, *, fill: tuple[int, int, int] | str = "reflect"
) -> Image.Image:
    """The same FFHQ crop as `face` (found in `image`), at another side `res` px, without detecting again."""
    pil = image.convert("RGB") if image.mode != "RGB" else image
    return warp_image(pil, quad_transform(face.quad, res), (res, res), fill=fill)


def ffhq_quad(eyes: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    """FFHQ's oriented crop square from the two eye centres and the two mouth corners.

    eyes:  [2, 2] px: [image-left eye, image-right eye].
    mouth: [2, 2] px: [image-left corner, image-right corner].
    Returns quad [4, 2] px: top-left, bottom-left, bottom-right, top-right.
    """
    eyes = np.asarray(eyes, dtype=np.float64)
    mouth = np.asarray(mouth, dtype=np.float64)
    eye_avg = eyes.mean(axis=0)
    eye_to_eye = eyes[1] - eyes[0]
    eye_to_mouth = mouth.mean(axis=0) - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_transform(quad: np.ndarray, res: int) -> np.ndarray:
    """The similarity [2, 3] that maps quad's top edge onto the output's top edge (0,0)-(res,0)."""
    return similarity_from_points(np.stack([quad[0], quad[3]]), np.array([[0.0, 0.0], [float(res), 0.0]]))


NO_FACE_MESSAGE = "no face found in the image (is the face visible, upright and not too small?)"


def require_a_face(preview: Image.Image | np.ndarray, *, min_score: float = 0.5) -> None:
    """NoFaceError unless the face detectors find a face in `preview` (a cheaply decoded, reduced
    copy of an upload): a photo without one is refused before the full decode and alignment."""
    if not detectors.detect_faces(preview, model="both", min_score=min_score):
        raise NoFaceError(NO_FACE_MESSAGE)


def align_face(
    image: Image.Image | np.ndarray,
    res: int,
    which: Literal["largest", "all"] = "largest",
    *,
    min_score: float = 0.5,
    fill: tuple[int, int, int] | str = "reflect",
) -> list[AlignedFace]:
    """Find the faces in a photo and return FFHQ-style aligned square crops of them.

    image: an upright RGB photo (PIL, or uint8 [H, W, 3]); load files with tryon.vision.io.load_image,
        which applies the EXIF orientation.
    res: side of the aligned crops, px.
    which: "largest" = the one face with the largest crop (a list of one); "all" = every face found,
        largest first.
    min_score: smallest face detector confidence accepted.
    fill: how crop areas outside the photo are filled: "reflect" (FFHQ) or an RGB colour.

    Raises NoFaceError (an InputError) when no face is found.
    """
    if which not in ("largest", "all"):
        raise ValueError(f"which must be 'largest' or 'all', got {which!r}")
    if res < 1:
        raise ValueError(f"res must be positive, got {res}")
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8)) if isinstance(image, np.ndarray) else image
    pil = pil.convert("RGB") if pil.mode != "RGB" else pil
    faces = find_faces(pil, min_score=min_score)
    if not faces:
        raise NoFaceError(NO_FACE_MESSAGE)
    if which == "largest":
        faces = faces[:1]
    out = []
    for det, lms in faces:
        eyes, mouth = face_keypoints(lms)
        quad = ffhq_quad(eyes, mouth)
        M = quad_transform(quad, res)
        crop = warp_image(pil, M, (res, res), fill=fill)
        out.append(
            AlignedFace(
                image=crop,
                quad=quad,
                transform=M,
                landmarks=lms,
                eyes=eyes,
                mouth=mouth,
                score=det.score,
                coverage=coverage(M, pil.size, (res, res)),
            )
        )
    return out


def face_keypoints(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eye centres and mouth corners from face mesh landmarks [>=468, 2] px.

    Returns (eyes [2, 2], mouth [2, 2]), each ordered [person's right, person's left] (image-left,
    image-right in an upright photo).
    """
    right_eye = landmarks[list(RIGHT_EYE_CONTOUR), :2].mean(axis=0)
    left_eye = landmarks[list(LEFT_EYE_CONTOUR), :2].mean(axis=0)
    mouth_r = landmarks[MOUTH_RIGHT_CORNER, :2]
    mouth_l = landmarks[MOUTH_LEFT_CORNER, :2]
    # Anatomical order (the person's right first): a tilted or upside-down face comes out upright.
    eyes = np.stack([right_eye, left_eye])
    mouth = np.stack([mouth_r, mouth_l])
    return eyes, mouth


# Which detections count as faces (benchmarks/bench_face_count.py measures them on the shared photos).
# Landmarks: the detector's eyes and the mesh's eyes must agree within one eye distance, and the mesh
# must cover the detector's box (IoU >= 0.25). On 300 catalog photos this drops a "face" on a sneaker
# and one on a bag (eyes 2.7 and 3.4 eye distances apart); real faces, even small ones, stay below 0.5.
MAX_EYE_DISAGREEMENT = 1.0
MIN_MESH_BOX_IOU = 0.25
# A further face counts only when the photo could be of it: at least half the size of the largest one
# and a detector score >= 0.6. Smaller or fainter ones are people far behind (or patterns that look
# like a face): a shopper's portrait in front of a crowd, a flag or a poster is one face.
MIN_RELATIVE_SIZE = 0.5
MIN_FURTHER_SCORE = 0.6


def find_faces(image: Image.Image, *, min_score: float = 0.5) -> list[tuple[detectors.FaceDetection, np.ndarray]]:
    """Faces with their mesh: [(detection, landmarks [478, 2] px)], the largest crop first.

    A detection whose crop yields no mesh, a mesh that belongs to another (overlapping) face, or one
    that does not fit the detection (`plausible_face`) is dropped. Two detections that yield the same
    mesh count once. Faces other than the largest must be comparable to it (`MIN_RELATIVE_SIZE`,
    `MIN_FURTHER_SCORE`).
    """
    return counted_faces(meshed_detections(image, min_score=min_score))


def meshed_detections(
    image: Image.Image, *, min_score: float = 0.5
) -> list[tuple[detectors.FaceDetection, np.ndarray]]:
    """Every face detection with the face mesh found around it, [(detection, landmarks [478, 2] px)],
    before any are dropped (see `counted_faces`)."""
    dets = detectors.detect_faces(image, model="both", min_score=min_score)
    found = []
    for det in sorted(dets, key=lambda d: -d.size):
        lms = _mesh_around(image, det)
        if lms is not None:
            found.append((det, lms))
    return found


def counted_faces(
    meshed: list[tuple[detectors.FaceDetection, np.ndarray]], *, filters: bool = True
) -> list[tuple[detectors.FaceDetection, np.ndarray]]:
    """The faces among `meshed_detections`, the largest crop first. filters=False keeps implausible
    and background faces (to measure what the filters drop)."""
    found: list[tuple[float, detectors.FaceDetection, np.ndarray]] = []
    for det, lms in meshed:
        if filters and not plausible_face(det, lms):
            continue
        quad = ffhq_quad(*face_keypoints(lms))
        size = float(np.linalg.norm(quad[3] - quad[0]))
        centre = lms[:, :2].mean(axis=0)
        if any(np.linalg.norm(centre - other[:, :2].mean(axis=0)) < 0.25 * size for _, _, other in found):
            continue  # The same face, found by both detector models.
        found.append((size, det, lms))
    found.sort(key=lambda t: (-t[0], t[1].box[0], t[1].box[1]))
    if filters and found:
        largest = found[0][0]
        found = found[:1] + [
            t for t in found[1:] if t[0] >= MIN_RELATIVE_SIZE * largest and t[1].score >= MIN_FURTHER_SCORE
        ]
    return [(det, lms) for _, det, lms in found]


def plausible_face(det: detectors.FaceDetection, landmarks: np.ndarray) -> bool:
    """Whether the face mesh `landmarks` [>=468, 2] px and the detection `det` describe one face: the
    detector's eye keypoints lie near the mesh's eyes and the mesh's extent overlaps the box. A mesh
    fitted to something that is not a face (a shoe, a bag) lands elsewhere."""
    eyes, _ = face_keypoints(landmarks)
    eye_distance = max(float(np.linalg.norm(eyes[1] - eyes[0])), 1e-6)
    # The detector's keypoints 0 and 1 are the person's right and left eye, the order of `eyes`.
    apart = float(np.max(np.linalg.norm(det.keypoints[:2] - eyes, axis=1))) / eye_distance
    xy = landmarks[:, :2]
    mesh_box = np.concatenate([xy.min(axis=0), xy.max(axis=0)])
    return apart <= MAX_EYE_DISAGREEMENT and detectors.box_iou(mesh_box, det.box) >= MIN_MESH_BOX_IOU


def _mesh_around(image: Image.Image, det: detectors.FaceDetection) -> np.ndarray | None:
    """Face mesh landmarks [478, 2] (source px) of the face in `det`, or None."""
    side = CONTEXT * max(det.box[2] - det.box[0], det.box[3] - det.box[1])
    if side < 4:
        return None
    cx, cy = det.center
    k = MESH_INPUT / side
    # Crop by a pure scale + translation; outside the photo the crop shows the photo's mean colour.
    M = np.array([[k, 0.0, MESH_INPUT / 2 - k * cx], [0.0, k, MESH_INPUT / 2 - k * cy]])
    mean = tuple(int(v) for v in np.asarray(image.resize((8, 8), Image.Resampling.BOX)).reshape(-1, 3).mean(0))
    crop = warp_image(image, M, (MESH_INPUT, MESH_INPUT), fill=mean)  # type: ignore[arg-type]
    meshes = detectors.detect_face_mesh(np.asarray(crop), max_faces=1, refine=True)
    if not meshes:
        return None
    lms = transform_points(invert_transform(M), meshes[0].xy)
    # The mesh must be the detected face, not a neighbour that also shows in the crop.
    centre = lms.mean(axis=0)
    x0, y0, x1, y1 = det.box
    if not (x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1):
        return None
    return lms
