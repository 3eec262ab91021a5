"""mediapipe wrappers: body pose, face detection, face mesh, hands and person segmentation.

mediapipe 0.10.21 ships these models inside its wheel and `mediapipe.solutions` loads them offline.
(Pose `model_complexity` 0 and 2 would be downloaded at run time, so only 1, the bundled "full" model,
is used.) Nothing is created at import: each detector is built on first use and then reused by its
process, one instance per configuration, behind a lock (a mediapipe graph is not re-entrant). A
process that was forked after a detector was built makes its own rather than sharing the parent's.

All functions take an RGB uint8 array [H, W, 3] (or a PIL image) and return landmarks in image
pixels, continuous coordinates (the centre of pixel (i, j) is (j + 0.5, i + 0.5)). They are
deterministic: the same pixels give the same numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "FaceDetection",
    "FaceMesh",
    "Hand",
    "Pose",
    "PoseLandmark",
    "box_iou",
    "close_detectors",
    "detect_face_mesh",
    "detect_faces",
    "detect_hands",
    "detect_pose",
    "segment_person",
]


class PoseLandmark(enum.IntEnum):
    """Indices of mediapipe's 33 pose landmarks that tryon uses. "Left" is the person's left."""

    NOSE = 0
    LEFT_EYE = 2
    RIGHT_EYE = 5
    LEFT_EAR = 7
    RIGHT_EAR = 8
    LEFT_SHOULDER = 11
    RIGHT_SHOULDER = 12
    LEFT_ELBOW = 13
    RIGHT_ELBOW = 14
    LEFT_WRIST = 15
    RIGHT_WRIST = 16
    LEFT_HIP = 23
    RIGHT_HIP = 24
    LEFT_KNEE = 25
    RIGHT_KNEE = 26
    LEFT_ANKLE = 27
    RIGHT_ANKLE = 28


# Left/right swap of all 33 pose landmarks (for mirrored images).
POSE_FLIP_INDEX: tuple[int, ...] = (
    0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23, 26, 25,
    28, 27, 30, 29, 32, 31,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Pose:
    """The body pose of the most prominent person in an image."""

    xy: np.ndarray          # [33, 2] float64 landmark positions, image px (may lie outside the image).
    visibility: np.ndarray  # [33] float64 in [0, 1]: how likely each landmark is visible (not occluded or cut).

    def point(self, index: int) -> np.ndarray:
        """[2] position of landmark `index` (a PoseLandmark)."""
        return self.xy[int(index)].copy()

    @property
    def shoulder_mid(self) -> np.ndarray:
        """[2] midpoint of the two shoulders, px."""
        return (self.xy[PoseLandmark.LEFT_SHOULDER] + self.xy[PoseLandmark.RIGHT_SHOULDER]) / 2

    @property
    def hip_mid(self) -> np.ndarray:
        """[2] midpoint of the two hips, px."""
        return (self.xy[PoseLandmark.LEFT_HIP] + self.xy[PoseLandmark.RIGHT_HIP]) / 2

    def min_visibility(self, indices: Sequence[int]) -> float:
        return float(np.min(self.visibility[list(map(int, indices))]))


@dataclasses.dataclass(frozen=True)
class FaceDetection:
    """One face found by the face detector."""

    score: float            # Detector confidence in [0, 1].
    box: np.ndarray         # [4] float64 x0, y0, x1, y1 px (may extend past the image).
    keypoints: np.ndarray   # [6, 2] px: right eye, left eye, nose tip, mouth centre, right ear, left ear.

    @property
    def size(self) -> float:
        """Geometric mean of the box width and height, px."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


@dataclasses.dataclass(frozen=True)
class FaceMesh:
    """mediapipe face mesh of one face: 468 landmarks, plus 10 iris landmarks when refined."""

    landmarks: np.ndarray   # [468 or 478, 3] float64: x, y px; z relative depth (x scale, smaller = closer).

    @property
    def xy(self) -> np.ndarray:
        """[N, 2] landmark positions, px."""
        return self.landmarks[:, :2]


@dataclasses.dataclass(frozen=True)
class Hand:
    """One hand found by the hand landmark model."""

    score: float            # Handedness classifier confidence in [0, 1] (how sure it is this is a hand).
    handedness: str         # "Left" or "Right" as mediapipe reports it (assumes a mirrored selfie image).
    xy: np.ndarray          # [21, 2] float64 landmark positions, px.


# ----------------------------------------------------------------------------------------------------
# The per-process detector cache.

_lock = threading.Lock()
_detectors: dict[tuple[Any, ...], list[Any]] = {}
_owner_pid: int | None = None


def _solutions() -> Any:
    import mediapipe as mp

    return mp.solutions


def _bundled_model(relative: str) -> Path:
    """Path of a model inside the mediapipe wheel; a clear error (never a download) when missing."""
    import mediapipe as mp

    path = Path(mp.__file__).resolve().parent / relative
    if not path.is_file():
        raise RuntimeError(
            f"mediapipe model {relative} is missing from {path.parent}; tryon needs mediapipe==0.10.21, "
            "whose wheel ships its models (later releases download them at run time, which cannot work offline)"
        )
    return path


def _get(key: tuple[Any, ...], build: Callable[[], Any]) -> list[Any]:
    """[solution, lock, used] of `key`, built on first use."""
    global _owner_pid
    with _lock:
        if _owner_pid != os.getpid():  # A forked child must not use the parent's graphs.
            _detectors.clear()
            _owner_pid = os.getpid()
        entry = _detectors.get(key)
        if entry is None:
            entry = [build(), threading.Lock(), False]
            _detectors[key] = entry
        return entry


def _process(key: tuple[Any, ...], build: Callable[[], Any], image: np.ndarray) -> Any:
    """Run the detector of `key` on `image`. mediapipe logs its set-up from its scheduler threads at
    any time between the graph's construction and the end of its first run, so one filter spans both."""
    entry = _used_entry(key)
    if entry is not None:
        with entry[1]:
            return entry[0].process(image)
    with filtered_native_stderr():
        entry = _get(key, build)
        with entry[1]:
            result = entry[0].process(image)
            entry[2] = True
            return result


def _used_entry(key: tuple[Any, ...]) -> list[Any] | None:
    """The entry of `key` if this process built it and ran it once (its set-up is over)."""
    with _lock:
        entry = _detectors.get(key) if _owner_pid == os.getpid() else None
        return entry if entry is not None and entry[2] else None


# mediapipe's C++ set-up messages, written straight to file descriptor 2 (not through Python logging).
_NATIVE_NOISE = re.compile(
    rb"^(INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.|"
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR|"
    rb"[WI]0000 [^\n]*\] (Feedback manager requires a model with a single signature|"
    rb"Using NORM_RECT without IMAGE_DIMENSIONS))"
)
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Capture file descriptor 2 for the block and write back every line but mediapipe's known set-up
    noise. Whatever another thread writes meanwhile is written back too (after the block), not lost."""
    with _stderr_lock:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                kept = [line for line in capture.read().splitlines(keepends=True) if not _NATIVE_NOISE.match(line)]
                if kept:
                    os.write(2, b"".join(kept))


def close_detectors() -> None:
    """Release every detector this process built (they are rebuilt on next use)."""
    with _lock:
        items = list(_detectors.values()) if _owner_pid == os.getpid() else []
        _detectors.clear()
    for solution, lock, _ in items:
        with lock:
            solution.close()


# The face detectors see 128 or 192 px: a larger input only costs time (a 40 MP photo took 0.6 s
# to hand over), so larger images are reduced first (by an integer factor, box filter).
DETECTION_MAX_SIDE = 1024


def _reduced_array(image: np.ndarray | Image.Image, max_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(RGB uint8 array at most `max_side` a side, the original (W, H))."""
    if isinstance(image, np.ndarray):
        a = _as_array(image)
        size = (a.shape[1], a.shape[0])
        if max(size) <= max_side:
            return a, size
        image = Image.fromarray(a)
    size = image.size
    factor = -(-max(size) // max_side)
    if factor > 1:
        image = image.reduce(factor)
    return _as_array(image), size


def _as_array(image: np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {list(image.shape)}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError("the image is empty")
    return np.ascontiguousarray(image)


# ----------------------------------------------------------------------------------------------------
# Pose.


def detect_pose(image: np.ndarray | Image.Image, *, min_detection_confidence: float = 0.5) -> Pose | None:
    """Body landmarks of the most prominent person, or None when no person is found.

    image: RGB uint8 [H, W, 3].
    min_detection_confidence: threshold of mediapipe's person detector.
    """
    a = _as_array(image)

    def build() -> Any:
        _bundled_model("modules/pose_landmark/pose_landmark_full.tflite")
        return _solutions().pose.Pose(
            static_image_mode=True,
            model_complexity=1,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
        )

    result = _process(("pose", min_detection_confidence), build, a)
    if result.pose_landmarks is None:
        return None
    h, w = a.shape[:2]
    lms = result.pose_landmarks.landmark
    xy = np.array([(lm.x * w, lm.y * h) for lm in lms], dtype=np.float64)
    vis = np.clip(np.array([lm.visibility for lm in lms], dtype=np.float64), 0.0, 1.0)
    return Pose(xy=xy, visibility=vis)


# ----------------------------------------------------------------------------------------------------
# Faces.


def detect_faces(
    image: np.ndarray | Image.Image,
    *,
    model: str = "both",
    min_score: float = 0.5,
) -> list[FaceDetection]:
    """Faces in an image, best score first.

    model: "short" (faces that fill much of the image, e.g. selfies and catalog shots), "full"
        (also small faces far from the camera), or "both" (the union, overlaps merged).
    min_score: smallest detector confidence kept.
    """
    if model not in ("short", "full", "both"):
        raise ValueError(f"model must be 'short', 'full' or 'both', got {model!r}")
    a, (w, h) = _reduced_array(image, DETECTION_MAX_SIDE)
    found: list[FaceDetection] = []
    for selection in ({"short": (0,), "full": (1,), "both": (0, 1)}[model]):
        found += _detect_faces_one(a, selection, min_score, (w, h))
    found.sort(key=lambda d: (-d.score, d.box[0], d.box[1]))
    kept: list[FaceDetection] = []
    for det in found:  # Greedy non-maximum suppression across the two models.
        if all(box_iou(det.box, k.box) < 0.4 for k in kept):
            kept.append(det)
    return kept


def _detect_faces_one(a: np.ndarray, selection: int, min_score: float, size: tuple[int, int]) -> list[FaceDetection]:
    """Faces in `a` (maybe a reduced copy), in px of the original image of `size` (W, H)."""
    def build() -> Any:
        _bundled_model(
            "modules/face_detection/face_detection_short_range.tflite"
            if selection == 0
            else "modules/face_detection/face_detection_full_range_sparse.tflite"
        )
        return _solutions().face_detection.FaceDetection(model_selection=selection, min_detection_confidence=min_score)

    result = _process(("face_detection", selection, min_score), build, a)
    w, h = size                     # The detector answers in relative coordinates.
    out = []
    for det in result.detections or []:
        rel = det.location_data.relative_bounding_box
        box = np.array([rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h])
        kps = np.array([(k.x * w, k.y * h) for k in det.location_data.relative_keypoints], dtype=np.float64)
        out.append(FaceDetection(score=float(det.score[0]), box=box, keypoints=kps.reshape(-1, 2)))
    return out


def detect_face_mesh(
    image: np.ndarray | Image.Image,
    *,
    max_faces: int = 1,
    refine: bool = True,
    min_detection_confidence: float = 0.5,
) -> list[FaceMesh]:
    """Face mesh landmarks of up to `max_faces` faces (in mediapipe's order, not sorted).

    refine: also return the 10 iris landmarks (478 in all) and sharper eye and lip contours.
    mediapipe finds the faces with its short-range detector, so it suits images where a face fills a
    good part of the frame; for whole photos use `tryon.face.align`, which detects first and crops.
    """
    a = _as_array(image)

    def build() -> Any:
        _bundled_model(
            "modules/face_landmark/face_landmark_with_attention.tflite"
            if refine
            else "modules/face_landmark/face_landmark.tflite"
        )
        return _solutions().face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=max_faces,
            refine_landmarks=refine,
            min_detection_confidence=min_detection_confidence,
        )

    result = _process(("face_mesh", max_faces, refine, min_detection_confidence), build, a)
    h, w = a.shape[:2]
    meshes = []
    for face in result.multi_face_landmarks or []:
        lms = np.array([(lm.x * w, lm.y * h, lm.z * w) for lm in face.landmark], dtype=np.float64)
        meshes.append(FaceMesh(landmarks=lms))
    return meshes


# ----------------------------------------------------------------------------------------------------
# Hands and segmentation.


def detect_hands(image: np.ndarray | Image.Image, *, max_hands: int = 2, min_score: float = 0.5) -> list[Hand]:
    """Hands in an image (a sign that a person is there even when the head is out of frame)."""
    a = _as_array(image)

    def build() -> Any:
        _bundled_model("modules/hand_landmark/hand_landmark_full.tflite")
        return _solutions().hands.Hands(
            static_image_mode=True, max_num_hands=max_hands, model_complexity=1, min_detection_confidence=min_score
        )

    result = _process(("hands", max_hands, min_score), build, a)
    h, w = a.shape[:2]
    hands = []
    for lms, cls in zip(result.multi_hand_landmarks or [], result.multi_handedness or [], strict=False):
        xy = np.array([(lm.x * w, lm.y * h) for lm in lms.landmark], dtype=np.float64)
        top = cls.classification[0]
        hands.append(Hand(score=float(top.score), handedness=str(top.label), xy=xy))
    return hands


def segment_person(image: np.ndarray | Image.Image) -> np.ndarray:
    """Soft person mask float32 [H, W] in [0, 1] (1 = person), from mediapipe selfie segmentation."""
    a = _as_array(image)

    def build() -> Any:
        _bundled_model("modules/selfie_segmentation/selfie_segmentation.tflite")
        return _solutions().selfie_segmentation.SelfieSegmentation(model_selection=0)

    result = _process(("selfie_segmentation",), build, a)
    mask = np.asarray(result.segmentation_mask, dtype=np.float32)
    assert mask.shape == a.shape[:2], (mask.shape, a.shape)
    return np.clip(mask, 0.0, 1.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes [4] x0, y0, x1, y1."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
