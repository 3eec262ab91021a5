"""Face alignment (tryon.face.align): the crop the face dataset and the face projection share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DATA_DIR, require_shared
from PIL import Image

from tryon.errors import InputError
from tryon.face.align import AlignedFace, NoFaceError, align_face, face_keypoints, ffhq_quad
from tryon.vision import detectors
from tryon.vision.io import load_image

DATA = Path(__file__).parent / "data"
CELEBA = DATA / "faces" / "celeba" / "000001.jpg"
OBAMA = DATA / "faces" / "photos" / "obama_small.jpg"


def remeasure_eyes(face: AlignedFace) -> np.ndarray:
    """Eye centres [2, 2] found again by the face mesh on the aligned crop (crop px)."""
    big = face.image.resize((256, 256), Image.Resampling.BICUBIC)
    meshes = detectors.detect_face_mesh(np.asarray(big))
    assert meshes, "no face in the aligned crop"
    eyes, _ = face_keypoints(meshes[0].xy)
    return eyes * face.res / 256


def test_ffhq_quad_of_a_level_face() -> None:
    eyes = np.array([[40.0, 50.0], [60.0, 50.0]])
    mouth = np.array([[42.0, 75.0], [58.0, 75.0]])
    quad = ffhq_quad(eyes, mouth)
    # Side 2 * max(2 * eye distance, 1.8 * eye-to-mouth) = 2 * max(40, 45) = 90, axis-aligned,
    # centred at the eye midpoint + 0.1 * eye-to-mouth = (50, 52.5).
    assert np.allclose(quad, [[5, 7.5], [5, 97.5], [95, 97.5], [95, 7.5]])


def test_aligns_a_celeba_face() -> None:
    faces = align_face(load_image(CELEBA), 64)
    assert len(faces) == 1
    face = faces[0]
    assert face.image.size == (64, 64) and face.image.mode == "RGB"
    assert face.landmarks.shape == (478, 2) and face.coverage > 0.95
    # The transform maps the quad onto the output square.
    corners = face.to_aligned(face.quad)
    assert np.allclose(corners, [[0, 0], [0, 64], [64, 64], [64, 0]], atol=1e-6)
    assert np.allclose(face.to_source(face.to_aligned(face.eyes)), face.eyes)
    # Eyes (nearly) level and where FFHQ puts them, measured again on the crop itself. (FFHQ orients
    # the crop by the eye-eye and eye-mouth axes together, so a slightly turned face keeps a small tilt.)
    eyes = remeasure_eyes(face)
    assert abs(eyes[0, 1] - eyes[1, 1]) < 3
    assert np.allclose(eyes.mean(axis=0), face.to_aligned(face.eyes).mean(axis=0), atol=1.5)
    assert 28 < eyes.mean(axis=0)[0] < 36 and 20 < eyes.mean(axis=0)[1] < 32


def test_a_tilted_photo_gives_the_same_upright_crop() -> None:
    photo = load_image(OBAMA)
    tilted = photo.rotate(25, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    straight = align_face(photo, 64)[0]
    turned = align_face(tilted, 64)[0]
    eyes = remeasure_eyes(turned)
    assert abs(np.degrees(np.arctan2(*(eyes[1] - eyes[0])[::-1]))) < 4  # Level again.
    diff = np.abs(np.asarray(straight.image, dtype=float) - np.asarray(turned.image, dtype=float)).mean()
    assert diff < 12, diff  # The same crop up to resampling (an unaligned crop differs by ~50).


def test_no_face_is_a_clear_input_error() -> None:
    garment = load_image(DATA / "fashion" / "images" / "10025.jpg")
    with pytest.raises(NoFaceError, match="no face"):
        align_face(garment, 64)
    assert issubclass(NoFaceError, InputError)
    with pytest.raises(ValueError, match="which"):
        align_face(garment, 64, which="first")  # type: ignore[arg-type]


def test_arrays_and_fill_colours_are_accepted() -> None:
    a = np.asarray(load_image(CELEBA))
    face = align_face(a, 32, fill=(0, 0, 0))[0]
    assert face.image.size == (32, 32)


def test_all_faces_of_a_group_photo_largest_first() -> None:
    photo = load_image(require_shared(DATA_DIR / "face_photos" / "two_people.jpg"))
    faces = align_face(photo, 64, which="all")
    assert len(faces) == 2
    assert faces[0].size >= faces[1].size
    assert np.linalg.norm(faces[0].eye_center - faces[1].eye_center) > 100  # Two different people.
    assert len(align_face(photo, 64)) == 1


@pytest.mark.parametrize("name", ["15865.jpg", "20398.jpg"], ids=["sneaker", "bag"])
def test_a_detection_whose_landmarks_do_not_fit_is_not_a_face(name: str) -> None:
    """Two catalog photos (a sneaker, a bag) on which the face detector fires: the face mesh it is
    given lands away from the detector's eyes, so no face is counted."""
    photo = load_image(require_shared(DATA_DIR / "fashion_products" / "images" / name))
    assert detectors.detect_faces(photo, model="both"), "the detector alone sees a face here"
    with pytest.raises(NoFaceError):
        align_face(photo, 64, which="all")


def test_a_small_face_in_the_background_does_not_count() -> None:
    """A news photo with a face a quarter the size of the subject's behind them: one face."""
    photo = load_image(require_shared(DATA_DIR / "faces_lfw" / "images" / "Jerry_Regier" / "Jerry_Regier_0002.jpg"))
    assert len(detectors.detect_faces(photo, model="both")) >= 2
    assert len(align_face(photo, 64, which="all")) == 1


def test_two_people_side_by_side_still_count_as_two() -> None:
    photo = load_image(require_shared(DATA_DIR / "faces_lfw" / "images" / "Dolma_Tsering" / "Dolma_Tsering_0002.jpg"))
    faces = align_face(photo, 64, which="all")
    assert len(faces) == 2 and faces[1].size > 0.9 * faces[0].size


def test_rgba_png_and_partial_faces_from_shared_photos() -> None:
    root = require_shared(DATA_DIR / "face_photos")
    rgba = align_face(load_image(root / "32bit.png"), 64)
    assert rgba[0].coverage > 0.95
    partial = align_face(load_image(root / "obama_partial_face.jpg"), 64)[0]
    assert partial.coverage < 0.8  # The dataset tool skips these as face_cut_off.
