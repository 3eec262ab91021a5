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
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Literal

import numpy as np
from PIL import Image

from tryon.errors import InputError
from tryon.vision.model_frame import canonical_head_keypoints
from tryon.vision.warp import similarity_fit, transform_points

__all__ = [
    "ALIGNED_FACE_OVAL",
    "ALIGNED_KEYPOINTS",
    "BLEND_MODES",
    "CompositeResult",
    "NoUsableFaceError",
    "composite_face",
    "mesh_keypoints",
    "seam_metrics",
]

Blend = Literal["laplacian", "poisson", "alpha", "paste"]
BLEND_MODES: tuple[str, ...] = ("laplacian", "poisson", "alpha", "paste")

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
# Colour and blending (float32 RGB in [0, 1], [H, W, 3]).


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2LAB))


def _from_lab(lab: np.ndarray) -> np.ndarray:
    import cv2

    return np.clip(cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_LAB2RGB), 0.0, 1.0)


def match_colour(
    source: np.ndarray,
    target: np.ndarray,
    region: np.ndarray,
    *,
    strength: float = 1.0,
    max_gain: tuple[float, float, float] = (1.3, 1.25, 1.25),
) -> tuple[np.ndarray, dict[str, float]]:
    """Shift `source`'s Lab mean and std inside `region` to `target`'s there (Reinhard et al. 2001).

    source, target: float32 RGB [H, W, 3] in [0, 1]; region: bool [H, W] (the skin both images share).
    strength: 0 = no change, 1 = full transfer. max_gain: per L, a, b channel, the std ratio is
    clamped to [1/max_gain, max_gain] (eyes, brows and lips in the region inflate the spread; a full
    contrast transfer then blows out highlights and tints the face).
    Returns the recoloured source and the Lab mean distance (delta E, CIE76) before and after.
    """
    if int(region.sum()) < 16:
        return source, {"delta_e_before": float("nan"), "delta_e_after": float("nan")}
    src_lab, tgt_lab = _to_lab(source), _to_lab(target)
    s, t = src_lab[region], tgt_lab[region]
    s_mean, s_std = s.mean(0), s.std(0) + 1e-3
    t_mean, t_std = t.mean(0), t.std(0) + 1e-3
    g = np.asarray(max_gain, dtype=np.float32)
    gain = np.clip(t_std / s_std, 1.0 / g, g)
    out_lab = (src_lab - s_mean) * (1.0 + strength * (gain - 1.0)) + s_mean + strength * (t_mean - s_mean)
    out = _from_lab(out_lab)
    after = _to_lab(out)[region].mean(0)
    return out, {
        "delta_e_before": float(np.linalg.norm(s_mean - t_mean)),
        "delta_e_after": float(np.linalg.norm(after - t_mean)),
    }


def laplacian_blend(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, *, levels: int | None = None) -> np.ndarray:
    """Multi-band blend (Burt & Adelson 1983): each Laplacian band of fg and bg mixed by the mask
    blurred to that band's scale, so low frequencies (lighting) blend over a wide seam and details
    over a narrow one.

    fg, bg: float32 [H, W, 3]; alpha: float32 [H, W] in [0, 1] (1 = fg). Returns float32 [H, W, 3].
    """
    import cv2

    h, w = alpha.shape
    assert fg.shape == bg.shape == (h, w, 3), (fg.shape, bg.shape, alpha.shape)
    if levels is None:
        levels = max(1, min(6, int(np.log2(max(min(h, w), 8) / 8))))
    gf: list[np.ndarray] = [fg.astype(np.float32)]
    gb: list[np.ndarray] = [bg.astype(np.float32)]
    ga: list[np.ndarray] = [alpha.astype(np.float32)]
    for _ in range(levels):
        gf.append(np.asarray(cv2.pyrDown(gf[-1])))
        gb.append(np.asarray(cv2.pyrDown(gb[-1])))
        ga.append(np.asarray(cv2.pyrDown(ga[-1])))
    out: np.ndarray = gf[-1] * ga[-1][..., None] + gb[-1] * (1.0 - ga[-1][..., None])
    for i in range(levels - 1, -1, -1):
        size = (gf[i].shape[1], gf[i].shape[0])
        lf: np.ndarray = gf[i] - np.asarray(cv2.pyrUp(gf[i + 1], dstsize=size))
        lb: np.ndarray = gb[i] - np.asarray(cv2.pyrUp(gb[i + 1], dstsize=size))
        a = ga[i][..., None]
        out = np.asarray(cv2.pyrUp(out, dstsize=size)) + lf * a + lb * (1.0 - a)
    return np.clip(out, 0.0, 1.0)


def _poisson_blend(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Poisson (gradient-domain) cloning of fg into bg inside alpha > 0.5, via OpenCV."""
    import cv2

    mask = (alpha > 0.5).astype(np.uint8) * 255
    mask[:2, :] = mask[-2:, :] = 0  # seamlessClone needs the mask clear of the crop's border.
    mask[:, :2] = mask[:, -2:] = 0
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return bg
    # The clone is placed by the centre of the mask's bounding box; with fg and bg the same size that
    # puts every pixel back where it was.
    center = ((int(xs.min()) + int(xs.max()) + 1) // 2, (int(ys.min()) + int(ys.max()) + 1) // 2)
    src = np.clip(np.rint(fg * 255), 0, 255).astype(np.uint8)
    dst = np.clip(np.rint(bg * 255), 0, 255).astype(np.uint8)
    out = cv2.seamlessClone(src, dst, mask, center, cv2.NORMAL_CLONE)
    return np.asarray(out, dtype=np.float32) / 255.0


def seam_metrics(image: np.ndarray, mask: np.ndarray, *, reference: np.ndarray | None = None) -> dict[str, float]:
    """How visible the paste's outline is, from the gradient energy (mean squared gradient of the
    luminance, uint8 scale) on a thin band along the mask's outline.

    image: uint8 or float RGB [H, W, 3] (the composite); mask: [H, W] blend weight in [0, 1] (or 0..255).
    reference: the model image before compositing (same size): the band's energy there is the
    natural level (hair, jaw, collar edges also live there).
    Returns {"border": E_band, "interior": E_inside, "ratio": border / interior,
    "excess": border / reference border (1 = as smooth as the untouched photo)}.
    """
    import cv2

    m = mask.astype(np.float32)
    if m.max() > 1.0:
        m = m / 255.0
    hard = (m > 0.5).astype(np.uint8)
    if hard.sum() < 16:
        return {"border": float("nan"), "interior": float("nan"), "ratio": float("nan"), "excess": float("nan")}
    r = max(1, round(0.02 * np.sqrt(hard.sum())))  # Band half-width ~2 % of the face size.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    band = (cv2.dilate(hard, kernel) - cv2.erode(hard, kernel)).astype(bool)
    inner = cv2.erode(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (6 * r + 1, 6 * r + 1))).astype(bool)

    def energy(img: np.ndarray) -> np.ndarray:
        g = np.asarray(img, dtype=np.float32)
        if g.max() <= 1.0:
            g = g * 255.0
        lum = g @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        return np.asarray(gx * gx + gy * gy)

    e = energy(image)
    border = float(e[band].mean())
    interior = float(e[inner].mean()) if inner.any() else float("nan")
    out = {"border": border, "interior": interior, "ratio": border / max(interior, 1e-6), "excess": float("nan")}
    if reference is not None:
        out["excess"] = border / max(float(energy(reference)[band].mean()), 1e-6)
    return out


# ----------------------------------------------------------------------------------------------------
# The compositor.


def _polygon_mask(size: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """float32 [H, W] 1 inside the convex hull of polygon [N, 2] px (continuous coordinates)."""
    import cv2

    w, h = size
    mask = np.zeros((h, w), dtype=np.uint8)
    hull = cv2.convexHull(np.round((polygon - 0.5) * 16).astype(np.int32))  # 4 fractional bits.
    cv2.fillConvexPoly(mask, np.asarray(hull), (255,), lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def _feather(mask: np.ndarray, *, shrink: float, sigma: float) -> np.ndarray:
    """Shrink a [0, 1] mask by `shrink` px and blur it by a Gaussian of `sigma` px."""
    import cv2

    out = mask
    r = round(shrink)
    if r > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        out = cv2.erode(out, kernel)
    if sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return np.clip(out, 0.0, 1.0)


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
    if blend not in BLEND_MODES:
        raise InputError(f"blend must be one of {', '.join(BLEND_MODES)}, got {blend!r}")
    if warp not in ("similarity", "affine"):
        raise InputError(f"warp must be 'similarity' or 'affine', got {warp!r}")
    for name, value in (("colour_strength", colour_strength), ("canonical_colour_strength", canonical_colour_strength)):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"{name} must be in [0, 1], got {value}")
    if min_side < 1:
        raise InputError(f"min_side must be positive, got {min_side}")
    import cv2

    timings: dict[str, float] = {}
    notes: list[str] = []
    face = face_image.convert("RGB") if face_image.mode != "RGB" else face_image
    model = model_image.convert("RGB") if model_image.mode != "RGB" else model_image

    # 1. Upscale a small model image.
    t0 = time.perf_counter()
    scale = 1.0
    if max(model.size) < min_side:
        scale = min_side / max(model.size)
        model = model.resize((round(model.size[0] * scale), round(model.size[1] * scale)), Image.Resampling.LANCZOS)
    timings["upscale"] = time.perf_counter() - t0

    # 2. Locate the model's face.
    t0 = time.perf_counter()
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
    timings["locate"] = time.perf_counter() - t0

    # 3. Landmarks of the face image.
    t0 = time.perf_counter()
    if face_landmarks is not None:
        src_kp, src_oval = _keypoints_from_input(face_landmarks)
        face_source = "given"
    else:
        src_kp, src_oval, face_source = _face_image_landmarks(face)
    if src_oval is None:
        # Without a mesh, the aligned layout's oval, placed by the keypoints' similarity to the layout.
        L = similarity_fit(ALIGNED_KEYPOINTS[:4], src_kp[:4])
        src_oval = transform_points(L, ALIGNED_FACE_OVAL)
    timings["face_landmarks"] = time.perf_counter() - t0

    # 4. Warp the face into the model image's frame, in a crop around the face.
    t0 = time.perf_counter()
    M = _fit(src_kp, target_kp, warp)
    oval_out = transform_points(M, src_oval) if target_mesh is None else target_mesh[list(FACE_OVAL)]
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
    bg = model_arr[y0:y1, x0:x1]
    timings["warp"] = time.perf_counter() - t0

    # 5. Mask: the model's face oval (the warped face's without a mesh), inside the warped face.
    t0 = time.perf_counter()
    hard = _polygon_mask((cw, ch), oval_out - (x0, y0))
    if target_mesh is not None:
        hard = np.minimum(hard, _polygon_mask((cw, ch), transform_points(crop_M, src_oval)))
    hard = np.minimum(hard, (covered > 0.999).astype(np.float32))
    if blend == "paste":
        alpha = (hard > 0.5).astype(np.float32)
    else:
        alpha = _feather(hard, shrink=shrink * face_extent, sigma=feather * face_extent)
    timings["mask"] = time.perf_counter() - t0

    # 6. Colour: the inner face (away from hair and jaw edges) is the region both share.
    t0 = time.perf_counter()
    skin = _feather(hard, shrink=0.12 * face_extent, sigma=0) > 0.5
    strength = 0.0 if blend == "paste" else colour_strength if located == "face_mesh" else canonical_colour_strength
    fg, colour_stats = match_colour(warped, bg, skin, strength=strength)
    timings["colour"] = time.perf_counter() - t0

    # 7. Blend.
    t0 = time.perf_counter()
    if blend == "laplacian":
        out_crop = laplacian_blend(fg, bg, alpha)
    elif blend == "poisson":
        out_crop = _poisson_blend(fg, bg, alpha)
    else:
        out_crop = fg * alpha[..., None] + bg * (1.0 - alpha[..., None])
    out_arr = np.asarray(model, dtype=np.uint8).copy()
    out_arr[y0:y1, x0:x1] = np.clip(np.rint(out_crop * 255.0), 0, 255).astype(np.uint8)
    mask_full = np.zeros((H, W), dtype=np.uint8)
    mask_full[y0:y1, x0:x1] = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
    timings["blend"] = time.perf_counter() - t0
    timings["total"] = float(sum(timings.values()))

    eye_dist = float(np.hypot(*(target_kp[1] - target_kp[0])))
    metrics: dict[str, Any] = {
        "located": located,
        "face_landmarks": face_source,
        "faces_found": faces_found,
        "upscale": round(scale, 4),
        "eye_distance_px": round(eye_dist, 2),
        "face_scale": round(float(np.sqrt(abs(np.linalg.det(M[:, :2])))), 4),
        "fit_residual_px": round(float(np.sqrt(np.mean(np.sum((transform_points(M, src_kp) - target_kp) ** 2, 1)))), 3),
        "mask_fraction": round(float((mask_full > 127).mean()), 5),
        "colour_delta_e_before": round(colour_stats["delta_e_before"], 3),
        "colour_delta_e_after": round(colour_stats["delta_e_after"], 3),
        "colour_strength": strength,
        "blend": blend,
        "crop": [x0, y0, x1, y1],
    }
    return CompositeResult(
        image=Image.fromarray(out_arr),
        mask=Image.fromarray(mask_full),
        located=located,
        transform=M,
        target_keypoints=target_kp,
        face_keypoints=src_kp,
        scale=scale,
        notes=notes,
        metrics=metrics,
        timings=timings,
    )
