"""Request and response bodies: a Create / Public family per entity. Rows are never returned as-is."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from tryon.fashion.outfits import MAX_SEED
from tryon.nn.layer_groups import LayerGroup

# Numbers in request bodies are strict: JSON `false` is not 0.0, nor "3" the integer 3 (the schema
# says number / integer, and the server must not read more into a body than the schema allows).
StrictNumber = Annotated[float, Field(strict=True)]
StrictInteger = Annotated[int, Field(strict=True)]


class ValidationProblem(BaseModel):
    """One problem of a malformed request (pydantic's location, message and type)."""

    loc: list[str | int]
    msg: str
    type: str


def exactly_one_of(*fields: str) -> list[JsonValue]:
    """JSON schema `oneOf` alternatives: one of `fields` is a string, the others absent or null."""
    alternatives: list[JsonValue] = []
    for given in fields:
        properties: dict[str, JsonValue] = {f: {"type": "string" if f == given else "null"} for f in fields}
        alternatives.append({"required": [given], "properties": properties})
    return alternatives


class ErrorPublic(BaseModel):
    """Every error: `detail` says what is wrong and what to do, for a person."""

    detail: str = Field(examples=["the upload is a text file, not an image: send a JPEG, PNG or WebP photo"])
    request_id: str | None = Field(None, description="Quote it when reporting a problem.")
    errors: list[ValidationProblem] | None = Field(
        None, description="A malformed request (400): each problem, for programs."
    )


# --- Sessions and keys --------------------------------------------------------------------------------


class SessionPublic(BaseModel):
    """An anonymous shopper session. Send `Authorization: Bearer <token>`; the token is shown once."""

    token: str = Field(examples=["tys_4kq2...redacted"])
    owner_id: str
    expires_at: dt.datetime


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "shop backend", "scopes": ["shop"]}]})

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Literal["shop", "designer", "admin"]] = Field(min_length=1)


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    scopes: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The API key. Shown once: only its hash is stored.")


# --- Jobs ---------------------------------------------------------------------------------------------


class JobPublic(BaseModel):
    """A job: poll `GET /v1/jobs/{id}` until `status` is succeeded or failed."""

    model_config = ConfigDict(from_attributes=True)  # `JobPublic.model_validate(job_row)`.

    id: str
    kind: str = Field(examples=["face.project"])
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float = Field(ge=0, le=1)
    message: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    attempts: int
    max_attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    updated_at: dt.datetime


# --- Images -------------------------------------------------------------------------------------------


class ImagePublic(BaseModel):
    id: str
    kind: str = Field(examples=["face_photo", "face_aligned", "outfit"])
    url: str = Field(examples=["/v1/images/0f3c..."])
    width: int
    height: int
    media_type: str


# --- Faces --------------------------------------------------------------------------------------------


class FoundFacePublic(BaseModel):
    """One face of an uploaded photo with several."""

    index: int = Field(description="Send it as `face` to use this face (0 = the largest).")
    box: list[float] = Field(description="x0, y0, x1, y1 of the face in the upright photo, px.",
                             examples=[[116.0, 31.0, 203.0, 117.0]])
    score: float = Field(description="The face detector's confidence, 0-1.")


class FaceChoiceErrorPublic(ErrorPublic):
    """A photo with no usable face, or with several when the upload did not say which (`faces`)."""

    faces: list[FoundFacePublic] | None = Field(None, description="The faces found, largest first.")
    photo_width: int | None = Field(None, description="Width of the upright photo the boxes refer to, px.")
    photo_height: int | None = None


class FacePublic(BaseModel):
    id: str
    status: str = Field(examples=["uploaded", "projecting", "projected"])
    photo: ImagePublic | None = Field(description="The upload, upright, metadata removed.")
    aligned: ImagePublic | None = Field(description="The face, aligned and cropped like the training faces.")
    images: list[ImagePublic] = Field(description="Every stored image derived from this face.")
    faces_found: int | None = Field(None, description="Faces in the photo (the upload's `face` chose one).")
    face_index: int | None = Field(None, description="Which of them is used (0 = the largest).")
    note: str | None = Field(None, examples=["2 faces were found in the photo; face 1, as asked, was used."])
    projection_job: JobPublic | None = None
    refinement: Literal["pending", "done", "failed"] | None = Field(
        None,
        description="The pivotal-tuning refinement its projection queued: 'done' = edits and try-ons made from "
        "now on use the face's tuned generator; 'failed' = the fast projection stays in use; null = none queued.",
    )
    refinement_job: JobPublic | None = None
    reconstruction: ImagePublic | None = Field(
        None, description="The face as the face generator draws it once projected (status 'projected'); "
        "the tuned one once refined."
    )
    created_at: dt.datetime


# --- Outfits ------------------------------------------------------------------------------------------


class OutfitCreate(BaseModel):
    """An outfit by labels. category / colour / gender / view map onto the model's label names
    (`GET /v1/labels`); `labels` takes any label by its own name."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"category": "tops", "colour": "black", "gender": "Men", "view": "on_model", "seed": 42,
                 "truncation": 0.7}
            ]
        },
    )

    category: str | None = Field(None, max_length=100)
    colour: str | None = Field(None, max_length=100)
    gender: str | None = Field(None, max_length=100)
    view: str | None = Field(None, max_length=100)
    labels: dict[str, str] = Field(default_factory=dict, description="More labels by their schema name.")
    seed: StrictInteger = Field(0, ge=0, le=MAX_SEED)
    truncation: StrictNumber = Field(0.7, ge=0.0, le=1.5, description="1 = full variety, lower = closer to typical.")


class OutfitPublic(BaseModel):
    id: str
    labels: dict[str, str]
    seed: int
    truncation: float
    checkpoint_id: str
    image: ImagePublic
    created_at: dt.datetime


class LabelColumnPublic(BaseModel):
    name: str = Field(examples=["articleType"])
    field: str | None = Field(None, description="The OutfitCreate field that sets this label, if any.")
    values: list[str]


class LabelsPublic(BaseModel):
    checkpoint_id: str
    conditional: bool
    resolution: int
    columns: list[LabelColumnPublic]


# --- Health -------------------------------------------------------------------------------------------


class HealthPublic(BaseModel):
    """Anonymous callers (and keys without `admin`) get `status` only; the rest is for admin keys."""

    status: Literal["ok", "degraded"]
    version: str | None = None
    database: dict[str, Any] | None = None
    queue: dict[str, Any] | None = None
    jobs: dict[str, int] | None = None
    models: dict[str, dict[str, Any]] | None = None
    ops: dict[str, Any] | None = None


# --- Rows -> public bodies ----------------------------------------------------------------------------


def image_public(image: Any, url: str | None = None) -> ImagePublic:
    """An image row as the API shows it; `url`: where to fetch it (default: /v1/images/{id})."""
    return ImagePublic(
        id=image.id,
        kind=image.kind,
        url=url or f"/v1/images/{image.id}",
        width=image.width,
        height=image.height,
        media_type=image.media_type,
    )


# --- Try-on ------------------------------------------------------------------------------------------


class TryOnEdits(BaseModel):
    """Face edits applied before compositing (see `GET /v1/edits/directions`), on the face's projection
    or on one of its edits (`edit_id`: a mix, a composition, earlier strengths)."""

    model_config = ConfigDict(extra="forbid")

    edit_id: str | None = Field(None, max_length=64, description="Start from this edit of the face (yours, made).")
    strengths: dict[str, StrictNumber] = Field(default_factory=dict, examples=[{"age": 10, "smile": 0.5}])
    instruction: str | None = Field(None, max_length=500, examples=["older, smiling"])


class TryOnCreate(BaseModel):
    """A face (projected) and one of an outfit, a catalog item, a garment (its on-model image) or a shop
    product."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"face_id": "f_…", "outfit_id": "o_…", "edits": {"strengths": {"smile": 0.5}}}],
            "oneOf": exactly_one_of("outfit_id", "catalog_id", "garment_id", "product_id"),
        },
    )

    face_id: str = Field(max_length=64)
    outfit_id: str | None = Field(None, max_length=64)
    catalog_id: str | None = Field(None, max_length=64)
    garment_id: str | None = Field(None, max_length=64)
    product_id: str | None = Field(
        None,
        max_length=64,
        description="A shop product: on-model, the face goes onto its real photo; flat, the garment is first "
        "put on a generated model (garment transfer). The result's `path` says which.",
    )
    gender: str | None = Field(
        None, max_length=100, description="Flat products: the generated model's gender (default: the product's)."
    )
    edits: TryOnEdits | None = None


class TryOnPublic(BaseModel):
    """A try-on: poll `GET /v1/tryon/{id}` (or its job) until `status` is succeeded or failed."""

    id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    face_id: str
    outfit_id: str | None = None
    catalog_id: str | None = None
    garment_id: str | None = None
    product_id: str | None = None
    path: Literal["photo", "garment_transfer", "generated"] = Field(
        "generated",
        description="photo: the face on a real product photo; garment_transfer: a flat product worn by a generated "
        "model first; generated: a generated (or transferred garment's) model image.",
    )
    edits: dict[str, Any] = Field(
        default_factory=dict, description="edit_id (if any), strengths (resolved when done), instruction"
    )
    image: ImagePublic | None = Field(None, description="The composite, when done.")
    notes: list[str] = Field(default_factory=list, examples=[["the face was placed at the model's head position"]])
    metrics: dict[str, Any] | None = Field(None, description="Compositing metrics (how the face was located...).")
    error: str | None = None
    job: JobPublic | None = None
    created_at: dt.datetime


# --- Catalog, variants, garments ---------------------------------------------------------------------


class CatalogItemPublic(BaseModel):
    """A garment of the shared catalog. Its image is readable by every caller (`image.url`)."""

    id: str
    name: str = Field(examples=["blue tops (Men, on model)"])
    labels: dict[str, str] = Field(description="The model's labels (schema names).")
    category: str | None = None
    colour: str | None = None
    gender: str | None = None
    view: str | None = None
    seed: int | None = None
    truncation: float | None = None
    source: Literal["generated", "designer"]
    params: dict[str, Any] | None = Field(
        None,
        description="How a designer's variant was made; for a generated item, `classifier`: the labels our "
        "fashion feature network checked, its probability of each (`scores`) and the seeds tried.",
    )
    image: ImagePublic
    outfit_id: str | None = None
    created_at: dt.datetime


class CatalogPage(BaseModel):
    items: list[CatalogItemPublic]
    page: int
    per_page: int
    total: int
    counts: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="For each filter (category, colour, gender, view): the items each of its values holds "
        "given the other filters; a value that is absent holds none.",
        examples=[{"colour": {"blue": 12, "black": 8}, "view": {"on_model": 20}}],
    )


class CatalogCreate(BaseModel):
    """Save one of your outfits (e.g. a variant) or images to the catalog."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"outfit_id": "0f3c...", "name": "Midnight tee"}],
            # Exactly one of outfit_id / image_id (null counts as absent).
            "oneOf": exactly_one_of("outfit_id", "image_id"),
        },
    )

    outfit_id: str | None = Field(None, max_length=64)
    image_id: str | None = Field(None, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    labels: dict[str, str] | None = Field(
        None, description="Labels by schema name or category / colour / gender / view (default: the outfit's)."
    )


class VariantsCreate(BaseModel):
    """Variants of a garment: other seeds, a truncation sweep, style mixing with another garment by
    layer group, an interpolation path to it, or other colours with the same seed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "base": {"category": "tops", "colour": "blue", "gender": "Men", "view": "flat", "seed": 3},
                    "mode": "mix",
                    "other": {"category": "tops", "colour": "red", "gender": "Men", "view": "flat", "seed": 9},
                    "layers": "fine",
                }
            ]
        },
    )

    base: OutfitCreate
    mode: Literal["seeds", "truncation", "mix", "interpolate", "colour"]
    seeds: list[StrictInteger] | None = Field(
        None, max_length=64, description="seeds: the seeds (default: 4 after base's)."
    )
    truncations: list[StrictNumber] | None = Field(None, max_length=64, description="truncation: the psis.")
    other: OutfitCreate | None = Field(None, description="mix / interpolate: the second garment.")
    layers: LayerGroup | list[LayerGroup] = Field(
        "fine", description="mix: coarse = silhouette, middle, fine = colour / texture (one image per group)."
    )
    steps: StrictInteger = Field(5, ge=2, le=64, description="interpolate: images on the path, ends included.")
    colours: list[str] | None = Field(None, max_length=64, description="colour: the colours (default: all).")


class VariantPublic(BaseModel):
    outfit_id: str
    image: ImagePublic
    params: dict[str, Any]


class VariantsPublic(BaseModel):
    variants: list[VariantPublic]


class GarmentPublic(BaseModel):
    """An uploaded garment photo and its transfer onto a model (poll until status is transferred)."""

    id: str
    status: Literal["queued", "transferring", "transferred", "failed"]
    photo: ImagePublic | None
    flat: ImagePublic | None = Field(None, description="The garment as the fashion generator draws it.")
    on_model: ImagePublic | None = Field(None, description="The garment worn by a generated model.")
    outfit_id: str | None = Field(None, description="The on-model outfit (try-on takes it).")
    labels: dict[str, str] | None = Field(None, description="The garment's labels, read by the classifier.")
    metrics: dict[str, Any] | None = None
    error: str | None = None
    job: JobPublic | None = None
    created_at: dt.datetime


# --- Face edits --------------------------------------------------------------------------------------


class EditDirectionPublic(BaseModel):
    name: str = Field(examples=["age"])
    range: list[float] = Field(min_length=2, max_length=2, examples=[[-15, 15]], description="Allowed strengths.")
    description: str = Field(examples=["older (+) or younger (−)"])
    unit: str = Field(description="What one unit of strength means.")
    kind: str = Field(examples=["attribute", "ganspace", "sefa"], description="How the direction was found.")
    layers: str = Field(examples=["coarse", "middle+fine", "all"], description="Layers it edits by default.")


class EditDirectionsPublic(BaseModel):
    directions: list[EditDirectionPublic]
    instruction_words: list[str] = Field(description="Every word and phrase `instruction` understands.")
    layer_groups: dict[str, list[int]] = Field(description="ws index ranges [start, stop) of each layer group.")


class FaceMix(BaseModel):
    """Style mixing: take whole layer groups of another of your projected faces."""

    model_config = ConfigDict(extra="forbid")

    face_id: str = Field(max_length=64, description="Another of your faces, projected.")
    groups: list[Literal["coarse", "middle", "fine"]] = Field(
        default=["fine"],
        min_length=1,
        max_length=3,
        description="coarse: pose and face shape; middle: features, expression, hair style; fine: colours.",
    )


class EditCreate(BaseModel):
    """Edits of a projected face: style mixing with another face, then strengths by direction name
    and/or an instruction in plain words (explicit strengths win over the instruction's for the same
    name)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"strengths": {"age": 10, "smile": 0.5}, "instruction": None},
                                        {"instruction": "a bit older, no glasses", "keep": ["gender"]}]},
    )

    strengths: dict[str, StrictNumber] = Field(
        default_factory=dict, max_length=32, examples=[{"age": 10, "smile": 0.5}]
    )
    instruction: str | None = Field(None, max_length=500, examples=["older, smiling, no glasses"])
    keep: list[str] = Field(default_factory=list, max_length=16, description="Attributes to keep fixed (e.g. gender).")
    mix: FaceMix | None = Field(None, examples=[{"face_id": "f_…", "groups": ["fine"]}])
    base_edit_id: str | None = Field(
        None,
        max_length=64,
        description="Start from this edit of the same face (a composition, a mix, earlier strengths) instead "
        "of its projection: the new edit stacks on it.",
    )


class RegionBorrow(BaseModel):
    """A region of another of your projected faces, composed into this one by masked projection."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"face_id": "f_…", "region": "eyes", "steps": 100}]}
    )

    face_id: str = Field(max_length=64, description="The face the region comes from (yours, projected).")
    region: Literal["eyes", "mouth", "nose", "hair"]
    steps: StrictInteger = Field(
        100, ge=1, le=500, description="Optimisation steps (about 0.1 s each on one CPU core)."
    )


class CompositionCreate(RegionBorrow):
    """A region of another of your projected faces, composed into this one (or into one of its edits)
    by masked projection."""

    base_edit_id: str | None = Field(
        None,
        max_length=64,
        description="Compose into this edit of the face (e.g. an earlier borrow) instead of its projection.",
    )


class EditPublic(BaseModel):
    """An edit of a face. Edits by strengths, instruction or mix are made at once; a composition is made
    by a `face.compose` job: poll the edit (`GET /v1/faces/{id}/edits`) or the job until `status` is
    succeeded or failed."""

    id: str
    face_id: str
    status: Literal["queued", "running", "succeeded", "failed"] = "succeeded"
    strengths: dict[str, float] = Field(default_factory=dict, description="The strengths applied (instruction merged).")
    instruction: str | None = None
    keep: list[str] = Field(default_factory=list)
    mix: FaceMix | None = Field(None, description="The face and layer groups mixed in first, if any.")
    base_edit_id: str | None = Field(None, description="The edit this one stacks on, if any.")
    compose: RegionBorrow | None = Field(None, description="The region composed in, for a composition.")
    image: ImagePublic | None = Field(description="The edited face (null until made, or once deleted).")
    metrics: dict[str, float] | None = Field(None, description="A composition's PSNR inside / outside the region.")
    error: str | None = None
    job: JobPublic | None = None
    created_at: dt.datetime


# --- Shop products ------------------------------------------------------------------------------------


class ProductPublic(BaseModel):
    """A shop's real product. Every caller may read it and its images (the storefront lists it)."""

    id: str
    product_id: str = Field(description="The shop's own product id (the `id` attribute).", examples=["10057"])
    name: str = Field(examples=["White Tshirts"])
    attributes: dict[str, str] = Field(description="The shop's attributes, in the catalog's vocabulary.")
    labels: dict[str, str] = Field(description="The fashion model's groups: articleGroup, colourGroup, gender, view.")
    category: str
    colour: str
    gender: str
    view: Literal["flat", "on_model"]
    source: Literal["product"] = "product"
    photo: ImagePublic = Field(description="The product's photo as imported (upright).")
    image: ImagePublic = Field(description="The prepared image: pose-normalized model or centred flat, square.")
    created_at: dt.datetime
    updated_at: dt.datetime


class ProductPage(BaseModel):
    items: list[ProductPublic]
    page: int
    per_page: int
    total: int
