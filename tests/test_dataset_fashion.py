"""One catalog photo -> one normalized training image (datasets.fashion), on the real fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets.fashion import (
    FLAT_MARGIN,
    FashionOptions,
    canonical_points,
    estimate_background,
    foreground_box,
    measure_landmarks,
    prepare_fashion_image,
    process_fashion_item,
)
from datasets.pipeline import Item
from tryon.errors import InputError
from tryon.vision.io import load_image

IMAGES = Path(__file__).parent / "data" / "fashion" / "images"
ON_MODEL = IMAGES / "10057.jpg"
ON_MODEL_2 = IMAGES / "10075.jpg"
FLAT = IMAGES / "10025.jpg"
HOODIE = IMAGES / "10643.jpg"
LEGS = IMAGES / "11280.jpg"
RES = 128


def assert_at_canonical_pose(image: Image.Image, shoulder_tol: float = 2.0, hip_tol: float = 5.0) -> None:
    found = measure_landmarks(image)
    assert found is not None, "no person in the normalized image"
    shoulder, hip = canonical_points(image.width)
    assert np.linalg.norm(np.array(found["shoulder_mid"]) - shoulder) < shoulder_tol, found["shoulder_mid"]
    assert np.linalg.norm(np.array(found["hip_mid"]) - hip) < hip_tol, found["hip_mid"]


@pytest.mark.parametrize("path", [ON_MODEL, ON_MODEL_2])
def test_on_model_photos_are_pose_normalized(path: Path) -> None:
    photo = load_image(path)
    result = prepare_fashion_image(photo, FashionOptions(res=RES))
    assert result.reason is None and result.view == "on_model" and result.meta["frame"] == "pose"
    assert result.image is not None and result.image.size == (RES, RES)
    assert_at_canonical_pose(result.image)
    # The transform recorded in the metadata maps the measured input points onto the canonical ones.
    M = np.array(result.meta["transform"])
    src = np.array([result.meta["shoulder_mid"], result.meta["hip_mid"]])
    assert np.allclose(src @ M[:, :2].T + M[:, 2], canonical_points(RES), atol=1e-3)


def test_a_tilted_photo_is_straightened() -> None:
    photo = load_image(ON_MODEL).rotate(12, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255))
    result = prepare_fashion_image(photo, FashionOptions(res=RES))
    assert result.image is not None, result.reason
    assert abs(result.meta["tilt"]) > 8  # The input torso leaned ...
    assert_at_canonical_pose(result.image, hip_tol=8.0)  # ... the output's is upright at the canonical place.


def test_flat_garment_is_centred_with_its_aspect() -> None:
    result = prepare_fashion_image(load_image(FLAT), FashionOptions(res=RES))
    assert result.view == "flat" and result.image is not None
    out = np.asarray(result.image)
    box = foreground_box(out, estimate_background(out)[0])
    assert box is not None
    x0, y0, x1, y1 = box
    assert abs((x0 + x1) / 2 - RES / 2) <= 1.5 and abs((y0 + y1) / 2 - RES / 2) <= 1.5
    assert abs(max(x1 - x0, y1 - y0) - RES * (1 - 2 * FLAT_MARGIN)) <= 3
    src_box = result.meta["box"]
    aspect_in = (src_box[2] - src_box[0]) / (src_box[3] - src_box[1])
    assert abs((x1 - x0) / (y1 - y0) - aspect_in) < 0.05


def test_flat_on_a_coloured_background_keeps_that_background() -> None:
    a = np.full((200, 300, 3), (90, 120, 150), dtype=np.uint8)
    a[0:60, 0:100] = (200, 30, 30)  # A 100 x 60 "garment" in the corner: centring it exposes the outside.
    result = prepare_fashion_image(Image.fromarray(a), FashionOptions(res=64))
    assert result.view == "flat" and result.image is not None
    out = np.asarray(result.image).astype(int)
    assert np.abs(out[0, 0] - [90, 120, 150]).max() <= 2  # Outside the photo: its own background colour.
    red = np.argwhere((out[..., 0] > 150) & (out[..., 1] < 80))
    (y0, x0), (y1, x1) = red.min(axis=0), red.max(axis=0) + 1
    assert abs((x1 - x0) - 64 * (1 - 2 * FLAT_MARGIN)) <= 1.5  # The longer side spans the frame less the margins,
    assert abs((y1 - y0) - 0.6 * (x1 - x0)) <= 1.5  # and the 100 x 60 aspect is kept.
    assert abs((x0 + x1) / 2 - 32) <= 1 and abs((y0 + y1) / 2 - 32) <= 1
    white = prepare_fashion_image(Image.fromarray(a), FashionOptions(res=64, background=(255, 255, 255)))
    assert white.image is not None and white.image.getpixel((0, 0)) == (255, 255, 255)


def test_pose_alone_does_not_make_a_garment_on_model() -> None:
    result = prepare_fashion_image(load_image(HOODIE), FashionOptions(res=RES))
    assert result.view == "flat" and result.image is not None


def test_headless_shots_are_on_model_and_framed_by_their_box() -> None:
    result = prepare_fashion_image(load_image(LEGS), FashionOptions(res=RES))
    assert result.view == "on_model" and result.image is not None
    assert result.meta["frame"] == "box" and result.meta["pose_skipped"].startswith("low_visibility")
    out = np.asarray(result.image)
    box = foreground_box(out, estimate_background(out)[0])
    assert box is not None and abs((box[1] + box[3]) / 2 - RES / 2) <= 1.5  # Centred like a flat.
    skipped = prepare_fashion_image(load_image(LEGS), FashionOptions(res=RES, headless="skip"))
    assert skipped.view == "on_model" and skipped.image is None and skipped.reason == "low_visibility"


def test_views_filter_and_forced_views() -> None:
    only_models = FashionOptions(res=RES, views=("on_model",))
    assert prepare_fashion_image(load_image(FLAT), only_models).reason == "no_person"
    only_flats = FashionOptions(res=RES, views=("flat",))
    assert prepare_fashion_image(load_image(ON_MODEL), only_flats).reason == "view_excluded"
    # A photo said to show a model (VITON's image/ folder) but showing none:
    forced = prepare_fashion_image(load_image(FLAT), FashionOptions(res=RES), view="on_model")
    assert forced.reason == "no_person"
    # A model photo said to be a flat is centred as one.
    assert prepare_fashion_image(load_image(ON_MODEL), FashionOptions(res=RES), view="flat").view == "flat"


def test_blank_small_and_cut_off_photos_are_skipped_with_reasons() -> None:
    assert prepare_fashion_image(Image.new("RGB", (200, 200), "white"), FashionOptions()).reason == "no_foreground"
    assert prepare_fashion_image(Image.new("RGB", (20, 200), "white"), FashionOptions()).reason == "too_small"
    speck = np.full((60, 60, 3), 255, dtype=np.uint8)
    speck[28:32, 28:32] = 0  # 4 px would have to grow 28x.
    assert prepare_fashion_image(Image.fromarray(speck), FashionOptions()).reason == "too_small"
    close_up = load_image(ON_MODEL).crop((40, 60, 184, 130)).resize((288, 140))  # Chest only.
    assert prepare_fashion_image(close_up, FashionOptions()).reason in {"low_visibility", "extreme_crop"}


def test_background_whitening_uses_the_person_mask() -> None:
    a = np.asarray(load_image(ON_MODEL)).copy()
    white = (a > 235).all(axis=2)
    a[white] = (0, 160, 0)  # The studio background, painted green.
    plain = prepare_fashion_image(Image.fromarray(a), FashionOptions(res=RES))
    whitened = prepare_fashion_image(Image.fromarray(a), FashionOptions(res=RES, whiten_background=True))
    assert plain.image is not None and whitened.image is not None
    corner = (slice(30, 40), slice(14, 24))  # Beside the head: background, inside the photo.
    assert np.asarray(plain.image)[corner].mean(axis=(0, 1))[0] < 60  # Green stays green ...
    assert np.asarray(whitened.image)[corner].mean(axis=(0, 1)).min() > 200  # ... unless whitened.
    assert_at_canonical_pose(whitened.image)


def test_worker_entry_point_encodes_or_explains() -> None:
    options = FashionOptions(res=64, image_format="jpg", quality=90)
    ok = process_fashion_item(Item(key="10057.jpg", path=str(ON_MODEL)), options)
    assert ok.reason is None and len(ok.outputs) == 1 and ok.outputs[0].view == "on_model"
    assert ok.outputs[0].data[:2] == b"\xff\xd8"  # JPEG
    missing = process_fashion_item(Item(key="nope.jpg", path=str(IMAGES / "nope.jpg")), options)
    assert missing.reason == "unreadable" and "nope.jpg" in missing.detail


def test_options_are_validated() -> None:
    with pytest.raises(InputError, match="--views"):
        FashionOptions(views=("side",))
    with pytest.raises(InputError, match="--format"):
        FashionOptions(image_format="gif")
    with pytest.raises(InputError, match="--res"):
        FashionOptions(res=4)
