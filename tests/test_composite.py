"""Face compositing (tryon.composite): the blend and colour helpers on synthetic arrays, the
canonical-head fallback on a generated-like image, and real photos from ../shared (the pasted face's
landmarks land on the model's, the seam is smoother than a naive paste, a headless photo is refused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tryon.composite import (
    ALIGNED_KEYPOINTS,
    NoUsableFaceError,
    composite_face,
    laplacian_blend,
    match_colour,
    mesh_keypoints,
    seam_metrics,
)
from tryon.errors import InputError
from tryon.vision.model_frame import CANONICAL_EYES, canonical_head_keypoints

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = SHARED / "tryon_examples"
needs_shared = pytest.mark.skipif(not MODELS.is_dir(), reason=f"{MODELS} is absent (the real try-on photos)")


def synthetic_face(size: int = 64, seed: int = 0) -> Image.Image:
    """A skin-coloured disc with dark eyes and mouth where the aligned layout puts them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] + 0.5
    a = np.full((size, size, 3), (90, 60, 50), np.float32)
    disc = (xx - size / 2) ** 2 / 0.3**2 + (yy - 0.6 * size) ** 2 / 0.36**2 < size**2
    a[disc] = (200, 150, 120)
    for x, y in ALIGNED_KEYPOINTS[:4] * size:
        a[(xx - x) ** 2 + (yy - y) ** 2 < (0.04 * size) ** 2] = (30, 20, 20)
    a += rng.normal(0, 3, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def blob_model(size: int = 64) -> Image.Image:
    """A generated-looking on-model image: blurry blobs on white, no face a detector can find."""
    yy, xx = np.mgrid[:size, :size] / size
    a = np.full((size, size, 3), 245.0)
    head = np.exp(-(((xx - 0.5) / 0.08) ** 2 + ((yy - 0.15) / 0.1) ** 2))
    body = np.exp(-(((xx - 0.5) / 0.25) ** 2 + ((yy - 0.55) / 0.3) ** 2))
    a -= head[..., None] * np.array([60, 110, 140]) + body[..., None] * np.array([160, 120, 40])
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def test_the_canonical_frame_is_the_one_the_dataset_uses() -> None:
    import tryon.catalog.photos as photos
    from tryon.vision import model_frame

    # The dataset tools' photo prep (tryon.catalog.photos, re-exported by datasets) uses the same frame.
    assert photos.CANONICAL_SHOULDER is model_frame.CANONICAL_SHOULDER
    assert photos.CANONICAL_HIP is model_frame.CANONICAL_HIP
    # The head sits above the shoulders, centred.
    eyes, mouth = canonical_head_keypoints((512, 512))
    assert eyes[:, 1].max() < mouth[:, 1].min() < model_frame.CANONICAL_SHOULDER[1] * 512
    assert abs(eyes[:, 0].mean() - 256) < 1 and eyes[0, 0] < eyes[1, 0]


def test_laplacian_blend_keeps_each_side_and_joins_them_smoothly() -> None:
    rng = np.random.default_rng(0)
    fg = rng.random((64, 80, 3), dtype=np.float32)
    bg = rng.random((64, 80, 3), dtype=np.float32)
    np.testing.assert_allclose(laplacian_blend(fg, bg, np.ones((64, 80), np.float32)), fg, atol=1e-5)
    np.testing.assert_allclose(laplacian_blend(fg, bg, np.zeros((64, 80), np.float32)), bg, atol=1e-5)
    # A hard step mask between two flat colours: the seam becomes a ramp, far pixels stay put.
    white, black = np.ones((64, 80, 3), np.float32), np.zeros((64, 80, 3), np.float32)
    step = np.zeros((64, 80), np.float32)
    step[:, 40:] = 1.0
    out = laplacian_blend(white, black, step)
    row = out[32, :, 0]
    assert row[0] < 0.02 and row[-1] > 0.98
    assert np.all(np.diff(row) >= -1e-4) and 0.2 < row[40] < 0.8 and np.abs(np.diff(row)).max() < 0.5


def test_match_colour_moves_the_mean_to_the_target() -> None:
    rng = np.random.default_rng(1)
    source = np.clip(rng.normal(0.35, 0.05, (40, 40, 3)), 0, 1).astype(np.float32)
    target = np.clip(rng.normal([0.8, 0.6, 0.5], 0.05, (40, 40, 3)), 0, 1).astype(np.float32)
    region = np.ones((40, 40), bool)
    out, stats = match_colour(source, target, region)
    assert stats["delta_e_before"] > 20 and stats["delta_e_after"] < 1.0
    np.testing.assert_allclose(out.mean((0, 1)), target.mean((0, 1)), atol=0.02)
    same, none = match_colour(source, target, region, strength=0.0)
    np.testing.assert_allclose(same, source, atol=2e-3)
    assert none["delta_e_after"] == pytest.approx(none["delta_e_before"], abs=0.5)


def test_a_generated_model_without_a_findable_face_gets_the_face_at_the_canonical_head() -> None:
    model, face = blob_model(64), synthetic_face(64)
    r = composite_face(face, model, generated=True)
    assert r.located == "canonical" and r.metrics["located"] == "canonical" and r.scale == 8.0
    assert r.image.size == (512, 512) and r.mask.size == (512, 512)
    assert any("head position" in note for note in r.notes)
    assert r.metrics["colour_strength"] == 0.5  # What lies at a canonical head may not be skin.
    # The face's eyes went where the pose-normalized frame has them.
    eyes = (r.transform[:, :2] @ (ALIGNED_KEYPOINTS[:2] * 64).T).T + r.transform[:, 2]
    np.testing.assert_allclose(eyes, np.array(CANONICAL_EYES) * 512, atol=6.0)
    up = np.asarray(model.resize((512, 512), Image.Resampling.LANCZOS)).astype(int)
    changed = np.abs(np.asarray(r.image).astype(int) - up).max(axis=2) > 4
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 500 and ys.max() < 0.3 * 512 and 0.3 * 512 < xs.mean() < 0.7 * 512
    mask = np.asarray(r.mask)
    assert mask.max() == 255 and (mask > 0).sum() < 0.1 * mask.size
    # The same image as a photo: no face, no fallback.
    with pytest.raises(NoUsableFaceError, match="no usable face") as info:
        composite_face(face, model)
    assert isinstance(info.value, InputError)


def test_given_landmarks_and_bad_arguments() -> None:
    model, face = blob_model(64), synthetic_face(128)
    kp = ALIGNED_KEYPOINTS * 128
    r = composite_face(face, model, face_landmarks=kp, generated=True, blend="alpha", min_side=256)
    assert r.image.size == (256, 256) and r.metrics["face_landmarks"] == "given"
    np.testing.assert_allclose(r.face_keypoints, kp)
    options = {"face_landmarks": kp, "generated": True, "min_side": 256}
    affine = composite_face(face, model, warp="affine", blend="poisson", **options)  # type: ignore[arg-type]
    assert affine.metrics["fit_residual_px"] <= r.metrics["fit_residual_px"] + 1e-6  # More freedom, closer fit.
    assert abs(np.linalg.det(affine.transform[:, :2]) - np.linalg.det(r.transform[:, :2])) > 1e-6
    with pytest.raises(InputError, match="blend"):
        composite_face(face, model, generated=True, blend="glue")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="colour_strength"):
        composite_face(face, model, generated=True, colour_strength=2.0)
    with pytest.raises(ValueError, match="face_landmarks"):
        composite_face(face, model, generated=True, face_landmarks=np.zeros((7, 2)))


@pytest.fixture(scope="module")
def real_face() -> Image.Image:
    from tryon.face.align import align_face
    from tryon.vision.io import load_image

    photo = SHARED / "face_photos" / "biden.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} is absent")
    return align_face(load_image(photo), 256)[0].image


@needs_shared
def test_on_a_real_photo_the_face_lands_on_the_models_face_and_blends(real_face: Image.Image) -> None:
    from tryon.face.align import find_faces
    from tryon.vision.io import load_image

    model = load_image(MODELS / "ootd_model" / "model_1.png")
    r = composite_face(real_face, model)
    assert r.located == "face_mesh" and r.scale == 1.0 and r.image.size == model.size
    assert r.metrics["face_landmarks"] == "face_mesh" and r.metrics["colour_strength"] == 1.0
    # The face mesh on the composite finds the pasted face's keypoints where they were aimed.
    found = find_faces(r.image)
    assert found, "no face on the composite"
    kp = mesh_keypoints(found[0][1])
    eye_dist = float(np.hypot(*(r.target_keypoints[1] - r.target_keypoints[0])))
    err = np.hypot(*(kp[:4] - r.target_keypoints[:4]).T)
    assert err.mean() < 0.1 * eye_dist, (err, eye_dist)
    # Only the face region changed.
    x0, y0, x1, y1 = r.metrics["crop"]
    out, src = np.asarray(r.image).astype(int), np.asarray(model).astype(int)
    outside = np.ones(out.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.abs(out - src)[outside].max() == 0
    assert r.metrics["colour_delta_e_after"] < 0.25 * r.metrics["colour_delta_e_before"]
    # The blended seam is much less visible than a naive paste's.
    naive = composite_face(real_face, model, blend="paste")
    smooth = seam_metrics(np.asarray(r.image), np.asarray(r.mask) / 255.0, reference=np.asarray(model))
    hard = seam_metrics(np.asarray(naive.image), np.asarray(naive.mask) / 255.0, reference=np.asarray(model))
    assert smooth["excess"] < 0.5 * hard["excess"], (smooth, hard)


@needs_shared
def test_a_photo_without_a_head_is_refused_clearly(real_face: Image.Image) -> None:
    from tryon.vision.io import load_image

    headless = load_image(MODELS / "ootd_model" / "049205_0.jpg")  # DressCode: cropped at the neck.
    with pytest.raises(NoUsableFaceError, match="no usable face on the model image"):
        composite_face(real_face, headless)
    # A generated image gets the fallback instead.
    assert composite_face(real_face, headless.resize((96, 128)), generated=True).located == "canonical"
