"""A shop's product (a photo + attributes in the catalog's own vocabulary) -> what the shop lists.

    attributes (styles.csv's columns: articleType, baseColour, gender, masterCategory, ...)
        --check_attributes--> ProductAttributes (checked values) | Refusal (unknown column/value)
    photo --tryon.catalog.photos--> view (on_model / flat), the normalized image (pose-normalized
        models, centred flats) | Refusal (no person where the row says on-model, ...)
    attributes + view --tryon.catalog.groups--> labels in the fashion model's groups
        {articleGroup, colourGroup, gender, view}

The photo goes through the same preparation as `tryon dataset fashion`'s training photos
(`DATASET_OPTIONS`: the dataset tool's defaults), so a product's prepared image and labels are what
the generator was trained on. Every way a product can be unusable is a `Refusal` with a reason code
(`REASONS`) and a detail a person can read, never an exception: a bulk import reports it and goes on.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from PIL import Image

from tryon.catalog.groups import (
    ARTICLE_GROUP_COLUMN,
    COLOUR_GROUP_COLUMN,
    COLOUR_GROUPS,
    OTHER,
    builtin_groups,
)
from tryon.catalog.photos import VIEWS, FashionImage, FashionOptions, prepare_fashion_image

# The catalog's vocabulary: the columns of the Fashion Product Images `styles.csv` (+ the view, when
# the shop knows it, and a display name). `id` is the shop's own product id.
ID_COLUMN = "id"
NAME_COLUMNS = ("productDisplayName", "name")
ATTRIBUTE_COLUMNS = (
    ID_COLUMN, "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "usage",
    "view", *NAME_COLUMNS,
)  # fmt: skip
GENDERS = ("Men", "Women", "Boys", "Girls", "Unisex")
SEASONS = ("Spring", "Summer", "Fall", "Winter")
MISSING = frozenset({"", "na", "n/a", "nan", "none", "null", "-"})
MAX_VALUE_LENGTH = 200
PRODUCT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")

# Why a product was refused: code -> what it means. The photo codes are the dataset tools'.
REASONS: dict[str, str] = {
    "missing_file": "the photo file named by the row does not exist",
    "unreadable": "not a readable image (corrupt, truncated, unsupported or over the size limits)",
    "unknown_column": "an attribute that is not in the catalog's vocabulary",
    "unknown_value": "an attribute value that is not in the catalog's vocabulary",
    "missing_value": "a required attribute (id, gender, articleType) is missing",
    "no_person": "no person in a photo the row says is on-model",
    "too_small": "too few pixels (the photo, or the person / garment in it)",
    "low_visibility": "shoulders, hips or nose not visible enough to normalize the pose",
    "pose_inconsistent": "implausible body landmarks (side view, strong tilt, not on the detected person)",
    "several_people": "more than one person in the photo",
    "extreme_crop": "the photo covers too little of the normalized frame (a close-up or a cut-off subject)",
    "no_foreground": "nothing but background (a blank photo)",
}

# The preparation of `tryon dataset fashion` (its defaults), so products match the training data.
DATASET_OPTIONS = FashionOptions()


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a product cannot be listed: a REASONS code and the specifics."""

    reason: str
    detail: str

    def __post_init__(self) -> None:
        assert self.reason in REASONS, self.reason

    def message(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class ProductAttributes:
    """Checked attributes: the shop's id, a display name, the catalog values (canonical spelling)."""

    product_id: str
    name: str
    values: dict[str, str]              # Column -> value, only the columns given (missing ones left out).
    view: str | None                    # The view the shop states, None = detect it from the photo.


@dataclasses.dataclass
class PreparedProduct:
    """A product ready to store."""

    attributes: ProductAttributes
    photo: Image.Image                  # The photo as decoded (upright RGB, its own resolution).
    image: Image.Image                  # The normalized square image (DATASET_OPTIONS.res px).
    view: str                           # "on_model" / "flat" (stated by the shop, or detected).
    labels: dict[str, str]              # {articleGroup, colourGroup, gender, view}: the model's groups.
    prep: dict[str, Any]                # What the preparation measured (frame, transform, landmarks...).

    @property
    def fields(self) -> dict[str, str]:
        """The friendly filter fields {category, colour, gender, view}."""
        return {
            "category": self.labels[ARTICLE_GROUP_COLUMN],
            "colour": self.labels[COLOUR_GROUP_COLUMN],
            "gender": self.labels["gender"],
            "view": self.view,
        }


def _folded(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    return {v.casefold(): v for v in values}


_GENDERS = _folded(GENDERS)
_SEASONS = _folded(SEASONS)
_VIEWS = _folded(list(VIEWS))
_COLOURS = _folded([v for values in COLOUR_GROUPS.values() for v in values])
_COLUMNS = _folded(list(ATTRIBUTE_COLUMNS))


def check_attributes(raw: Mapping[str, Any]) -> ProductAttributes | Refusal:
    """The shop's attributes -> checked values, or why they are unusable.

    Column names match ATTRIBUTE_COLUMNS case-insensitively. Required: id, gender and an article
    type the label groups know (articleType, else subCategory / masterCategory). Checked against the
    vocabulary: gender, baseColour, season, view, year; free text: the others (<= 200 characters).
    """
    values: dict[str, str] = {}
    for key, value in raw.items():
        column = _COLUMNS.get(str(key).strip().casefold())
        if column is None:
            known = ", ".join(ATTRIBUTE_COLUMNS)
            return Refusal("unknown_column", f"no attribute {str(key)[:100]!r} in the catalog (known: {known})")
        if value is None or isinstance(value, (dict, list)):
            if value is None:
                continue
            return Refusal("unknown_value", f"{column} must be text, got {type(value).__name__}")
        text = " ".join(str(value).split())
        if text.casefold() in MISSING:
            continue
        if len(text) > MAX_VALUE_LENGTH:
            return Refusal("unknown_value", f"{column} is longer than {MAX_VALUE_LENGTH} characters")
        values[column] = text
    product_id = values.pop(ID_COLUMN, None)
    if product_id is None:
        return Refusal("missing_value", "no product id (the 'id' attribute)")
    if not PRODUCT_ID_RE.match(product_id):
        return Refusal("unknown_value", f"product id {product_id[:100]!r}: use 1-100 letters, digits and . _ : -")
    for column, table in (("gender", _GENDERS), ("baseColour", _COLOURS), ("season", _SEASONS), ("view", _VIEWS)):
        if column in values:
            canonical = table.get(values[column].casefold())
            if canonical is None:
                allowed = ", ".join(sorted(table.values()))
                return Refusal("unknown_value", f"{column} {values[column]!r} is not one of: {allowed}")
            values[column] = canonical
    if "gender" not in values:
        return Refusal("missing_value", f"no gender (one of: {', '.join(GENDERS)})")
    if "year" in values and not (values["year"].isdigit() and 1900 <= int(values["year"]) <= 2100):
        return Refusal("unknown_value", f"year {values['year']!r} is not a year")
    if not any(c in values for c in ("articleType", "subCategory", "masterCategory")):
        return Refusal("missing_value", "no articleType (nor subCategory / masterCategory)")
    if builtin_groups().value(ARTICLE_GROUP_COLUMN, values) == OTHER:
        given = ", ".join(f"{c} {values[c]!r}" for c in ("articleType", "subCategory", "masterCategory") if c in values)
        return Refusal("unknown_value", f"{given}: not an article type of the catalog's label groups")
    name = next((values[c] for c in NAME_COLUMNS if c in values), None)
    if name is None:
        name = " ".join(values[c] for c in ("baseColour", "articleType") if c in values) or product_id
    view = values.pop("view", None)
    return ProductAttributes(product_id=product_id, name=name, values=values, view=view)


def product_labels(values: Mapping[str, str], view: str) -> dict[str, str]:
    """Catalog values + view -> the fashion model's groups, as `tryon dataset fashion --groups builtin`
    derives them: {articleGroup, colourGroup, gender, view}."""
    groups = builtin_groups()
    return {
        ARTICLE_GROUP_COLUMN: groups.value(ARTICLE_GROUP_COLUMN, values),
        COLOUR_GROUP_COLUMN: groups.value(COLOUR_GROUP_COLUMN, values),
        "gender": values.get("gender", OTHER),
        "view": view,
    }


def prepare_product(
    photo: Image.Image, attributes: ProductAttributes, options: FashionOptions = DATASET_OPTIONS
) -> PreparedProduct | Refusal:
    """One product photo (upright RGB) -> its view, normalized image and labels, or why not.

    A view stated by the shop is checked: "on_model" needs a person in the photo (else no_person);
    "flat" is taken as stated (flats are framed by their bounding box). Without one, it is detected.
    """
    stated = attributes.view
    result: FashionImage = prepare_fashion_image(photo, options, view="flat" if stated == "flat" else None)
    if result.image is None or result.view is None:
        reason = result.reason if result.reason in REASONS else "unreadable"
        if stated == "on_model" and result.view == "flat":
            return Refusal("no_person", "the row says on-model, but no face or hands were found in the photo")
        return Refusal(reason or "unreadable", result.detail or REASONS[reason or "unreadable"])
    if stated == "on_model" and result.view != "on_model":
        return Refusal("no_person", "the row says on-model, but no face or hands were found in the photo")
    return PreparedProduct(
        attributes=attributes,
        photo=photo,
        image=result.image,
        view=result.view,
        labels=product_labels(attributes.values, result.view),
        prep=dict(result.meta),
    )
