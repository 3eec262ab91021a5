"""Steps 1-4 of `composite_face`: where the face goes.

Upscale a small model image, locate the model's face (or a generated model's canonical head
position), find the keypoints of the face image, and warp the face into a crop of the model image
around the face. Coordinates are continuous pixel coordinates (see tryon.vision.io).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from tryon.errors import InputError
from tryon.vision.model_frame import canonical_head_keypoints
from tryon.vision.warp import similarity_fit, transform_points

# Face mesh indices: the face oval (clockwise from the top of the forehead) and the nose tip.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
NOSE_TIP = 1

# Where an FFHQ-aligned crop (tryon.face.align) puts the keypoints, as fractions of its side: the
# medians over 150 LFW photos aligned by align_face (spread: eyes ±0.007, mouth ±0.02, nose ±0.04).
# Rows: image-left eye, image-right eye, image-left mouth corner, image-right mouth corner, nose tip.
ALIGNED_KEYPOINTS = np.array(
    [[0.3754, 0.4733], [0.6244, 0.4736], [0.4009, 0.7443], [0.6029, 0.7443], [0.4963, 0.6368]]
)
# The median face-mesh oval of the same faces (FACE_OVAL order), for a face whose mesh is not found.
ALIGNED_FACE_OVAL = np.array(
    [
        [0.499, 0.272], [0.572, 0.274], [0.634, 0.283], [0.694, 0.304], [0.734, 0.338], [0.762, 0.383],
        [0.778, 0.430], [0.786, 0.491], [0.782, 0.548], [0.780, 0.607], [0.772, 0.669], [0.754, 0.735],
        [0.729, 0.789], [0.700, 0.829], [0.661, 0.863], [0.628, 0.887], [0.592, 0.905], [0.552, 0.920],
        [0.501, 0.926], [0.450, 0.922], [0.409, 0.908], [0.373, 0.888], [0.340, 0.865], [0.306, 0.829],
        [0.280, 0.792], [0.255, 0.735], [0.237, 0.668], [0.230, 0.605], [0.225, 0.547], [0.221, 0.490],
        [0.226, 0.429], [0.240, 0.381], [0.266, 0.336], [0.305, 0.304], [0.364, 0.283], [0.425, 0.273],
    ]
)  # fmt: skip

# Weights of the five keypoints in the warp fit: the eyes fix scale and rotation best; the nose and
# mouth move with expression and head pose.
KEYPOINT_WEIGHTS = np.array([2.0, 2.0, 1.0, 1.0, 0.5])


class NoUsableFaceError(InputError):
    """The model image (or the face image) has no face we can paste onto (the API answers 422)."""


@dataclasses.dataclass
class ModelFace:
    """Where the face goes on the model image (step 2), in px of the upscaled model image."""

    keypoints: np.ndarray       # [5, 2] eyes, mouth corners, nose tip (image-left first).
    mesh: np.ndarray | None     # [>=468, 2] the model's face mesh; None at the canonical head position.
    located: str                # "face_mesh" or "canonical".
    faces_found: int            # Faces on the model image (1 when its landmarks were given).
    notes: list[str]            # What a person should know about how the face was found.


@dataclasses.dataclass
class FaceKeypoints:
    """The keypoints and oval of the face image (step 3), in its px."""

    keypoints: np.ndarray       # [5, 2] eyes, mouth corners, nose tip (image-left first).
    oval: np.ndarray            # [36, 2] the face oval (FACE_OVAL order).
    source: str                 # "given", "face_mesh" or "aligned_layout".


@dataclasses.dataclass
class WarpedFace:
    """The face warped into a crop of the model image around the model's face (step 4)."""

    transform: np.ndarray       # [2, 3] float64: face image px -> model image px.
    crop_transform: np.ndarray  # [2, 3] float64: face image px -> crop px.
    box: tuple[int, int, int, int]  # The crop (x0, y0, x1, y1) in model image px.
    oval: np.ndarray            # [36, 2] the face oval on the model, in crop px.
    extent: float               # Face size: the oval's diagonal extent, px.
    face: np.ndarray            # float32 [h, w, 3] in [0, 1]: the warped face.
    covered: np.ndarray         # float32 [h, w]: how much of each crop pixel the warped face covers.
    background: np.ndarray      # float32 [h, w, 3] in [0, 1]: the model image in the crop.


# ----------------------------------------------------------------------------------------------------
# Landmarks.


def mesh_keypoints(landmarks: np.ndarray) -> np.ndarray:
    """Face mesh landmarks [>=468, 2] -> keypoints [5, 2]: eyes, mouth corners (image-left first), nose tip."""
    from tryon.face.align import face_keypoints

    eyes, mouth = face_keypoints(landmarks)
    return np.concatenate([eyes, mouth, landmarks[NOSE_TIP : NOSE_TIP + 1, :2]], axis=0)


def _largest_mesh(image: Image.Image) -> tuple[np.ndarray, int] | None:
    """Face mesh [478, 2] px of the largest face in a photo, and how many faces were found."""
    from tryon.face.align import find_faces

    faces = find_faces(image)
    if not faces:
        return None
    return faces[0][1], len(faces)


def _face_image_landmarks(face: Image.Image) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Keypoints [5, 2] and oval [36, 2] (or None) of an aligned face image, and where they came from.

    The face mesh runs on the face enlarged to 256 px (a 64² render is too small for it); a mesh whose
    eyes are far from the aligned layout (a blurry render read wrongly) is not trusted.
    """
    from tryon.vision import detectors

    side = float(face.size[0])
    layout = ALIGNED_KEYPOINTS * np.array(face.size, dtype=np.float64)
    work = 256
    k = work / side
    big = face.resize((work, round(face.size[1] * k)), Image.Resampling.LANCZOS) if face.size[0] != work else face
    meshes = detectors.detect_face_mesh(np.asarray(big), max_faces=1, refine=True)
    if meshes:
        lms = meshes[0].xy / k
        kp = mesh_keypoints(lms)
        eye_err = float(np.abs(kp[:2] - layout[:2]).max()) / side
        if eye_err < 0.06:
            return kp, lms[list(FACE_OVAL)], "face_mesh"
    return layout, None, "aligned_layout"


def _keypoints_from_input(face_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    lms = np.asarray(face_landmarks, dtype=np.float64)
    if lms.ndim != 2 or lms.shape[1] < 2 or not (lms.shape[0] == 5 or lms.shape[0] >= 468):
        raise ValueError(f"face_landmarks must be [5, 2] keypoints or a face mesh [>=468, 2], got {list(lms.shape)}")
    if lms.shape[0] == 5:
        return lms[:, :2], None
    return mesh_keypoints(lms[:, :2]), lms[list(FACE_OVAL), :2]


def _check_usable(keypoints: np.ndarray, *, what: str) -> None:
    """Refuse faces too small to paste onto, or turned too far from the camera."""
    eye_r, eye_l, _, _, nose = keypoints
    axis = eye_l - eye_r
    dist = float(np.hypot(*axis))
    if dist < 8.0:
        raise NoUsableFaceError(f"the face in {what} is too small ({dist:.0f} px between the eyes; at least 8 needed)")
    t = float(np.dot(nose - eye_r, axis) / (dist * dist))  # Nose position along the eye axis, 0.5 = frontal.
    if not 0.1 <= t <= 0.9:
        raise NoUsableFaceError(f"the face in {what} is turned too far from the camera: use a front-facing photo")


# ----------------------------------------------------------------------------------------------------
# The steps.


def upscale_model(model: Image.Image, min_side: int) -> tuple[Image.Image, float]:
    """Step 1: enlarge (Lanczos) a model image whose longer side is under `min_side` px to it.
    Returns the image and the scale applied (1 = none)."""
    scale = 1.0
    if max(model.size) < min_side:
        scale = min_side / max(model.size)
        model = model.resize((round(model.size[0] * scale), round(model.size[1] * scale)), Image.Resampling.LANCZOS)
    return model, scale


def locate_model_face(
    model: Image.Image, model_landmarks: np.ndarray | None, *, scale: float, generated: bool
) -> ModelFace:
    """Step 2: the model's face from its mesh (given in px before upscaling, or detected), or for a
    generated model without a usable face, the head position of the pose-normalized frame.

    Raises NoUsableFaceError for a photo (not `generated`) without a usable face.
    """
    notes: list[str] = []
    located = "face_mesh"
    target_mesh: np.ndarray | None = None
    faces_found = 0
    if model_landmarks is not None:
        target_mesh = np.asarray(model_landmarks, dtype=np.float64)[:, :2] * scale
        if target_mesh.shape[0] < 468:
            raise ValueError(f"model_landmarks must be a face mesh [>=468, 2], got {list(target_mesh.shape)}")
        faces_found = 1
    else:
        found = _largest_mesh(model)
        if found is not None:
            target_mesh, faces_found = found
    if target_mesh is not None:
        target_kp = mesh_keypoints(target_mesh)
        try:
            _check_usable(target_kp, what="the model image")
        except NoUsableFaceError:
            if not generated:
                raise
            target_mesh = None
    if target_mesh is None:
        if not generated:
            raise NoUsableFaceError(
                "no usable face on the model image: it needs a visible, front-facing head "
                "(a photo cropped at the neck or shot from behind cannot be used)"
            )
        located = "canonical"
        eyes, mouth = canonical_head_keypoints(model.size)
        layout = ALIGNED_KEYPOINTS
        # The nose where the aligned layout puts it relative to the eyes and mouth.
        t = (layout[4, 1] - layout[:2, 1].mean()) / (layout[2:4, 1].mean() - layout[:2, 1].mean())
        nose = eyes.mean(0) + t * (mouth.mean(0) - eyes.mean(0))
        target_kp = np.concatenate([eyes, mouth, nose[None]], axis=0)
        notes.append(
            "no face was found on the generated model; the face was placed at the head position of the "
            "pose-normalized frame"
        )
    elif faces_found > 1:
        notes.append(f"{faces_found} faces were found on the model image; the largest was used")
    return ModelFace(keypoints=target_kp, mesh=target_mesh, located=located, faces_found=faces_found, notes=notes)


def face_image_keypoints(face: Image.Image, face_landmarks: np.ndarray | None) -> FaceKeypoints:
    """Step 3: the face image's keypoints and oval, from `face_landmarks` ([5, 2] or a mesh), else from
    the face mesh or the aligned layout; without a mesh, the oval is the aligned layout's."""
    if face_landmarks is not None:
        src_kp, src_oval = _keypoints_from_input(face_landmarks)
        face_source = "given"
    else:
        src_kp, src_oval, face_source = _face_image_landmarks(face)
    if src_oval is None:
        # Without a mesh, the aligned layout's oval, placed by the keypoints' similarity to the layout.
        L = similarity_fit(ALIGNED_KEYPOINTS[:4], src_kp[:4])
        src_oval = transform_points(L, ALIGNED_FACE_OVAL)
    return FaceKeypoints(keypoints=src_kp, oval=src_oval, source=face_source)


def warp_face(
    face: Image.Image,
    model: Image.Image,
    source: FaceKeypoints,
    target: ModelFace,
    kind: str,
) -> WarpedFace:
    """Step 4: fit the warp (`kind`: "similarity" or "affine") from the face's keypoints onto the
    model's and warp the face into a crop around the model's face (35 % of the face size beyond it).

    Raises NoUsableFaceError when the face lies outside the model image.
    """
    import cv2

    M = _fit(source.keypoints, target.keypoints, kind)
    oval_out = transform_points(M, source.oval) if target.mesh is None else target.mesh[list(FACE_OVAL)]
    face_extent = float(np.hypot(*np.ptp(oval_out, axis=0)))
    margin = 0.35 * face_extent
    W, H = model.size
    x0 = int(max(0, np.floor(oval_out[:, 0].min() - margin)))
    y0 = int(max(0, np.floor(oval_out[:, 1].min() - margin)))
    x1 = int(min(W, np.ceil(oval_out[:, 0].max() + margin)))
    y1 = int(min(H, np.ceil(oval_out[:, 1].max() + margin)))
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise NoUsableFaceError("the face lies outside the model image")
    crop_M = M.copy()
    crop_M[:, 2] -= (x0, y0)
    cw, ch = x1 - x0, y1 - y0
    # cv2 maps pixel indices; continuous coordinates differ by half a pixel on both sides.
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
    idx_M = crop_M.copy()
    idx_M[:, 2] = crop_M[:, 2] + crop_M[:, :2] @ half[:, 2] - 0.5
    face_arr = np.asarray(face, dtype=np.float32) / 255.0
    interp = cv2.INTER_CUBIC if float(np.sqrt(abs(np.linalg.det(M[:, :2])))) >= 1.0 else cv2.INTER_AREA
    warped = cv2.warpAffine(face_arr, idx_M, (cw, ch), flags=interp, borderMode=cv2.BORDER_REFLECT)
    warped = np.clip(warped, 0.0, 1.0)
    covered = cv2.warpAffine(np.ones(face_arr.shape[:2], np.float32), idx_M, (cw, ch), flags=cv2.INTER_LINEAR)
    model_arr = np.asarray(model, dtype=np.float32) / 255.0
    return WarpedFace(
        transform=M, crop_transform=crop_M, box=(x0, y0, x1, y1), oval=oval_out - (x0, y0), extent=face_extent,
        face=warped, covered=covered, background=model_arr[y0:y1, x0:x1],
    )


def _fit(src: np.ndarray, dst: np.ndarray, kind: str) -> np.ndarray:
    """Weighted least-squares similarity or affine [2, 3] mapping keypoints src [5, 2] onto dst [5, 2]."""
    w = KEYPOINT_WEIGHTS
    if kind == "similarity":
        # Repeating points by weight (in halves) keeps similarity_fit's exact closed form.
        reps = np.round(w * 2).astype(int)
        return similarity_fit(np.repeat(src, reps, axis=0), np.repeat(dst, reps, axis=0))
    A = np.concatenate([src, np.ones((len(src), 1))], axis=1) * np.sqrt(w)[:, None]
    sol, *_ = np.linalg.lstsq(A, dst * np.sqrt(w)[:, None], rcond=None)
    return np.asarray(sol.T, dtype=np.float64)
