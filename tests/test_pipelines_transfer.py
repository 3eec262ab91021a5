"""Garment transfer: photo framing like the training flats, labels from the classifier, W+ projection
with D-feature + pixel losses, the garment's middle / fine layers on a model, the metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pipeline_helpers import save_tiny_fashion_models

from tryon.errors import InputError
from tryon.fashion import FashionPipeline, frame_garment_photo, garment_transfer
from tryon.fashion.transfer import (
    dominant_colour,
    garment_mask,
    lab_to_srgb,
    layout_error,
    match_colours,
    mean_lab,
    project_garment,
    srgb_to_lab,
    to_tensor,
    worn_region,
)
from tryon.vision.framing import FLAT_MARGIN

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
OOTD = SHARED / "data" / "tryon_examples" / "ootd_garment"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> FashionPipeline:
    return FashionPipeline.from_checkpoint(save_tiny_fashion_models(tmp_path_factory.mktemp("models")))


def garment_photo(colour: tuple[int, int, int] = (30, 60, 200)) -> Image.Image:
    photo = Image.new("RGB", (120, 160), (250, 250, 250))
    photo.paste(colour, (20, 30, 80, 130))  # A 60 x 100 px garment, off centre.
    return photo


def test_a_photo_is_framed_like_the_training_flats() -> None:
    framed = frame_garment_photo(garment_photo(), 64)
    assert framed.image.size == (64, 64) and framed.background == (250, 250, 250)
    ys, xs = np.nonzero(framed.mask)
    height = ys.max() - ys.min() + 1
    assert abs(height - 64 * (1 - 2 * FLAT_MARGIN)) <= 2  # The longer side spans the frame less the margins.
    assert abs((xs.min() + xs.max()) / 2 - 31.5) <= 1 and abs((ys.min() + ys.max()) / 2 - 31.5) <= 1
    corner = np.asarray(framed.image)[0, 0]
    assert tuple(int(v) for v in corner) == (250, 250, 250)  # Filled with the photo's background.


def test_a_photo_without_a_garment_is_refused() -> None:
    with pytest.raises(InputError, match="no garment found"):
        frame_garment_photo(Image.new("RGB", (100, 100), (255, 255, 255)), 64)


def test_projection_gets_closer_to_the_photo(pipe: FashionPipeline) -> None:
    framed = frame_garment_photo(garment_photo(), pipe.resolution)
    target = to_tensor(framed.image)
    labels = {"articleType": "Shirts", "view": "flat"}
    start = pipe.mean_ws(labels)
    ws, losses = project_garment(pipe, target, labels, steps=25)
    assert losses["perceptual_loss"] == "d_features" and losses["perceptual"] > 0
    with torch.no_grad():
        before = float(((pipe.synthesize(start[None]) - target) ** 2).mean())
        after = float(((pipe.synthesize(ws[None]) - target) ** 2).mean())
    assert after < 0.8 * before, (before, after)


def test_transfer_puts_the_garment_layers_on_a_model(pipe: FashionPipeline) -> None:
    seen: list[float] = []
    result = garment_transfer(pipe, garment_photo(), gender="Women", seed=5, steps=6,
                              progress=lambda f, m: seen.append(f))
    assert result.labels["view"] == "flat" and result.on_model_labels["view"] == "on_model"
    assert result.labels["gender"] == "Women" and result.on_model_labels["gender"] == "Women"
    assert set(result.estimate) == {"articleType", "baseColour", "gender", "view"}
    base = pipe.map_specs([pipe.spec(labels=result.on_model_labels, seed=5, truncation=0.7)])[0].cpu().numpy()
    coarse = pipe.layer_indices("coarse")
    taken = pipe.layer_indices("middle") + pipe.layer_indices("fine")
    np.testing.assert_allclose(result.on_model_ws[coarse], base[coarse], atol=1e-6)  # The model's silhouette...
    np.testing.assert_allclose(result.on_model_ws[taken], result.flat_ws[taken], atol=1e-6)  # ...the garment's look.
    for image in (result.framed, result.flat, result.on_model, result.base_on_model):
        assert image.size == (16, 16)
    m = result.metrics
    assert {"colour_distance", "colour_distance_before", "category_agreement", "projection"} <= set(m)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    assert result.timings["total_s"] >= result.timings["project_s"] > 0


def test_bad_transfer_arguments(pipe: FashionPipeline) -> None:
    with pytest.raises(InputError, match="its values are: Men, Women"):
        garment_transfer(pipe, garment_photo(), gender="Robot", steps=1)
    with pytest.raises(InputError, match="steps must be"):
        garment_transfer(pipe, garment_photo(), steps=0)


def test_colour_metrics() -> None:
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]]))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)  # sRGB red, D65.
    image = np.full([64, 64, 3], 255, dtype=np.uint8)
    image[25:52, 22:42] = (200, 30, 30)  # A red top on the torso of a white image.
    region = worn_region(image, "tops")
    assert region.any() and (image[region] == (200, 30, 30)).all()
    np.testing.assert_allclose(mean_lab(image, region), srgb_to_lab(np.array([200, 30, 30])), atol=1e-6)


def test_transfer_of_a_real_garment_photo_on_the_shipped_model() -> None:
    if not OOTD.is_dir():
        pytest.skip(f"{OOTD} is absent (../shared/data)")
    from tryon.vision.io import ImageLimits, load_image

    pipe = FashionPipeline.from_checkpoint(None)
    photo = load_image(OOTD / "00055_00.jpg", limits=ImageLimits())
    result = garment_transfer(pipe, photo, steps=30)  # About 10 s on one thread of a loaded 2-core machine.
    assert result.estimate["articleGroup"]["value"] == "tops"
    assert result.metrics["colour_distance"] < result.metrics["colour_distance_before"] + 5


def test_colour_matching_gives_the_worn_region_the_photo_garments_colours() -> None:
    rgb = np.array([[255, 255, 255], [0, 0, 0], [200, 30, 30], [20, 30, 90], [128, 128, 128]])
    np.testing.assert_array_equal(lab_to_srgb(srgb_to_lab(rgb)), rgb)  # The inverse of srgb_to_lab.
    photo = np.full([32, 32, 3], 250, dtype=np.uint8)
    photo[4:28, 4:28] = (200, 30, 30)
    photo[20:28, 4:28] = (20, 30, 90)  # A red garment with a navy band: red holds 2/3 of it.
    worn = np.full([64, 64, 3], 255, dtype=np.uint8)
    worn[20:60, 16:48] = np.linspace(20, 60, 32, dtype=np.uint8)[None, :, None]  # A shaded dark top.
    region = worn_region(worn, "tops")
    assert dominant_colour(photo, photo[..., 0] < 240) == "red" and dominant_colour(worn, region) == "black"
    matched = match_colours(worn, region, photo, photo[..., 0] < 240)
    assert dominant_colour(matched, region) == "red"
    assert (matched[:4] == worn[:4]).all()  # Outside the region (and its feathered edge) unchanged.
    navy = (np.abs(matched[region].astype(int) - (20, 30, 90)).max(axis=1) <= 2).mean()
    assert abs(navy - 1 / 3) < 0.05  # The photo's colours in its proportions.


def test_a_red_white_navy_tee_is_worn_in_its_layout_on_the_shipped_model() -> None:
    if not OOTD.is_dir():
        pytest.skip(f"{OOTD} is absent (../shared/data)")
    from tryon.vision.io import ImageLimits, load_image

    pipe = FashionPipeline.from_checkpoint(None)
    photo = load_image(OOTD / "00126_00.jpg", limits=ImageLimits())  # FILA tee: red shoulders, white, navy.
    result = garment_transfer(pipe, photo, steps=3)
    m = result.metrics
    assert m["dominant_colour_photo"] == "red"
    worn = np.asarray(result.on_model)
    mask = garment_mask(worn, "tops")
    rows = np.nonzero(mask.any(axis=1))[0]
    top, bottom = mask.copy(), mask.copy()
    top[rows[0] + len(rows) // 5 :] = False
    bottom[: rows[-1] - len(rows) // 5] = False
    assert dominant_colour(worn, top) == "red" and dominant_colour(worn, bottom) == "blue", m  # Navy is "blue".
    assert m["layout_error"] < 0.5 * m["layout_error_unmatched"], m


def test_the_garment_mask_takes_the_sleeves_and_leaves_the_skin() -> None:
    """A dark long-sleeved top wider than the category's box, bare forearms and a face: colour matching
    by the garment mask colours the sleeves, keeps the skin, and keeps a two-tone garment's layout
    (red above, navy below); by the fixed box the sleeves keep the model's colour."""
    skin, dark = (225, 175, 145), (40, 40, 40)
    worn = np.full([64, 64, 3], 245, dtype=np.uint8)
    worn[8:18, 27:37] = skin                    # Face.
    worn[18:21, 29:35] = skin                   # Neck.
    worn[20:54, 13:51] = dark                   # A top with sleeves to x 13..51 (the box: x 20..43).
    worn[40:54, 8:13] = skin                    # Forearms beside the sleeves.
    worn[40:54, 51:56] = skin
    worn[54:64, 20:44] = (60, 70, 110)          # Trousers.
    photo = np.full([32, 32, 3], 250, dtype=np.uint8)
    photo[4:16, 4:28] = (200, 30, 30)           # Red above ...
    photo[16:28, 4:28] = (20, 30, 90)           # ... navy below.
    photo_mask = photo[..., 0] < 240
    mask = garment_mask(worn, "tops")
    assert mask[30, 15] and mask[30, 48], "the sleeves are garment"
    assert not mask[45, 10] and not mask[12, 32] and not mask[60, 30], "forearms, face and trousers are not"
    assert not mask[5, 5], "nor the background"
    matched = match_colours(worn, mask, photo, photo_mask, layout=True)
    sleeve = (slice(24, 34), slice(14, 19))
    assert dominant_colour(matched[sleeve], np.ones([10, 5], bool)) == "red"
    assert (matched[45:54, 8:11] == skin).all() and (matched[60:, 22:42] == worn[60:, 22:42]).all()
    upper, lower = mask.copy(), mask.copy()
    upper[32:], lower[:44] = False, False
    assert dominant_colour(matched, upper) == "red" and dominant_colour(matched, lower) == "blue"
    assert layout_error(matched, mask, photo, photo_mask) < 10
    boxed = match_colours(worn, worn_region(worn, "tops"), photo, photo_mask)
    assert layout_error(boxed, mask, photo, photo_mask) > 2 * layout_error(matched, mask, photo, photo_mask)
    assert (boxed[sleeve] == dark).all(), "the fixed box leaves the sleeves as they were"


def test_colour_matching_gives_blobs_of_a_two_tone_garment_not_a_speckle() -> None:
    # The worn region: a top-to-bottom shading with pixel noise, as the generator's texture flickers.
    rng = np.random.default_rng(0)
    shade = np.linspace(60, 160, 48)[:, None] + rng.normal(0, 25, (48, 48))
    worn = np.repeat(np.clip(shade, 0, 255)[..., None], 3, axis=2).astype(np.uint8)
    region = np.ones((48, 48), bool)
    photo = np.zeros((32, 32, 3), np.uint8)
    photo[:16] = (20, 30, 90)      # Navy half ...
    photo[16:] = (230, 230, 230)   # ... and white half.
    matched = match_colours(worn, region, photo, np.ones((32, 32), bool))
    white = matched.astype(np.int64).sum(axis=2) > 3 * 160
    assert 0.3 < white.mean() < 0.7  # Both colours, in about their proportions ...
    changes = np.mean(white[1:] != white[:-1])
    assert changes < 0.1, changes  # ... in blobs: few vertical neighbours differ (raw ranking: a speckle).
