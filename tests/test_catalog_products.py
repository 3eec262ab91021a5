"""A shop product (photo + catalog attributes) -> view, prepared image, model labels (tryon.catalog.products),
on the real catalog fixtures: the same preparation as the training data, refusals with reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from tryon.catalog.photos import prepare_fashion_image
from tryon.catalog.products import (
    DATASET_OPTIONS,
    PreparedProduct,
    ProductAttributes,
    Refusal,
    check_attributes,
    prepare_product,
)
from tryon.vision.io import load_image

IMAGES = Path(__file__).parent / "data" / "fashion" / "images"
ON_MODEL = IMAGES / "10057.jpg"   # Men, white T-shirt, worn by a model.
FLAT = IMAGES / "10025.jpg"       # Women, pink T-shirt, flat.
ROW = {"id": "10057", "gender": "Men", "masterCategory": "Apparel", "subCategory": "Topwear",
       "articleType": "Tshirts", "baseColour": "White", "season": "Fall", "year": "2011", "usage": "Casual"}


def checked(**changes: str) -> ProductAttributes:
    result = check_attributes({**ROW, **changes})
    assert isinstance(result, ProductAttributes), result
    return result


def test_attributes_in_the_catalog_vocabulary_are_checked_and_canonical() -> None:
    attrs = checked(gender="men", baseColour="navy blue", view="ON_MODEL")
    assert attrs.product_id == "10057"
    assert attrs.values["gender"] == "Men" and attrs.values["baseColour"] == "Navy Blue"
    assert attrs.view == "on_model"
    assert "id" not in attrs.values and "view" not in attrs.values
    assert attrs.name == "Navy Blue Tshirts"                      # No display name: made from the values.
    assert checked(productDisplayName="Nike Men White Tee").name == "Nike Men White Tee"
    assert checked(baseColour="NA").values.get("baseColour") is None  # Missing, not unknown.


@pytest.mark.parametrize(
    ("changes", "reason", "words"),
    [
        ({"colr": "Red"}, "unknown_column", "'colr'"),
        ({"gender": "Martians"}, "unknown_value", "gender 'Martians'"),
        ({"baseColour": "Plaid"}, "unknown_value", "baseColour 'Plaid'"),
        ({"articleType": "Footballs", "subCategory": "Sports", "masterCategory": "Sporting Goods"},
         "unknown_value", "Footballs"),
        ({"view": "sideways"}, "unknown_value", "view"),
        ({"year": "last year"}, "unknown_value", "year"),
        ({"id": ""}, "missing_value", "product id"),
        ({"id": "a/b"}, "unknown_value", "product id"),
        ({"gender": ""}, "missing_value", "gender"),
    ],
)
def test_bad_attributes_are_refused_with_a_reason(changes: dict[str, str], reason: str, words: str) -> None:
    result = check_attributes({**ROW, **changes})
    assert isinstance(result, Refusal)
    assert result.reason == reason
    assert words in result.detail


def test_an_on_model_photo_is_pose_normalized_like_the_training_data() -> None:
    photo = load_image(ON_MODEL)
    prepared = prepare_product(photo, checked())
    assert isinstance(prepared, PreparedProduct)
    assert prepared.view == "on_model"
    assert prepared.labels == {"articleGroup": "tops", "colourGroup": "white", "gender": "Men", "view": "on_model"}
    assert prepared.fields == {"category": "tops", "colour": "white", "gender": "Men", "view": "on_model"}
    assert prepared.prep["frame"] == "pose"
    assert prepared.photo.size == photo.size                      # The photo itself is kept as it is.
    training = prepare_fashion_image(photo, DATASET_OPTIONS)       # What `tryon dataset fashion` makes.
    assert training.image is not None
    assert prepared.image.size == (DATASET_OPTIONS.res, DATASET_OPTIONS.res)
    assert prepared.image.tobytes() == training.image.tobytes()


def test_a_flat_photo_is_detected_and_framed() -> None:
    prepared = prepare_product(load_image(FLAT), checked(id="10025", gender="Women", baseColour="Pink"))
    assert isinstance(prepared, PreparedProduct)
    assert prepared.view == "flat" and prepared.prep["frame"] == "box"
    assert prepared.labels["colourGroup"] == "pink" and prepared.labels["view"] == "flat"


def test_a_row_that_says_on_model_needs_a_person_in_the_photo() -> None:
    result = prepare_product(load_image(FLAT), checked(view="on_model"))
    assert isinstance(result, Refusal)
    assert result.reason == "no_person"


def test_a_row_that_says_flat_is_taken_as_stated() -> None:
    prepared = prepare_product(load_image(ON_MODEL), checked(view="flat"))
    assert isinstance(prepared, PreparedProduct)
    assert prepared.view == "flat" and prepared.labels["view"] == "flat"
