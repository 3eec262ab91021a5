"""Request and response bodies: a Create / Public family per entity. Rows are never returned as-is."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tryon.api.fashion import MAX_SEED


class ErrorPublic(BaseModel):
    """Every error: `detail` says what is wrong and what to do, for a person."""

    detail: str = Field(examples=["the upload is a text file, not an image: send a JPEG, PNG or WebP photo"])
    request_id: str | None = Field(None, description="Quote it when reporting a problem.")


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


class FacePublic(BaseModel):
    id: str
    status: str = Field(examples=["uploaded", "projecting", "projected"])
    photo: ImagePublic | None = Field(description="The upload, upright, metadata removed.")
    aligned: ImagePublic | None = Field(description="The face, aligned and cropped like the training faces.")
    images: list[ImagePublic] = Field(description="Every stored image derived from this face.")
    faces_found: int | None = Field(None, description="Faces in the photo; the largest is used.")
    note: str | None = Field(None, examples=["2 faces were found; the largest was used."])
    projection_job: JobPublic | None = None
    created_at: dt.datetime


# --- Outfits ------------------------------------------------------------------------------------------


class OutfitCreate(BaseModel):
    """An outfit by labels. category / colour / gender / view map onto the model's label names
    (`GET /v1/labels`); `labels` takes any label by its own name."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"category": "Tshirts", "colour": "Black", "gender": "Men", "seed": 42, "truncation": 0.7}]
        },
    )

    category: str | None = Field(None, max_length=100)
    colour: str | None = Field(None, max_length=100)
    gender: str | None = Field(None, max_length=100)
    view: str | None = Field(None, max_length=100)
    labels: dict[str, str] = Field(default_factory=dict, description="More labels by their schema name.")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    truncation: float = Field(0.7, ge=0.0, le=1.5, description="1 = full variety, lower = closer to typical.")


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
    status: Literal["ok", "degraded"]
    version: str
    database: dict[str, Any]
    queue: dict[str, Any]
    jobs: dict[str, int]
    models: dict[str, dict[str, Any]]
    ops: dict[str, Any]


# --- Rows -> public bodies ----------------------------------------------------------------------------


def job_public(job: Any) -> JobPublic:
    return JobPublic(
        id=job.id,
        kind=job.kind,
        status=job.status,
        progress=job.progress,
        message=job.message,
        result=job.result,
        error=job.error,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
    )


def image_public(image: Any) -> ImagePublic:
    return ImagePublic(
        id=image.id,
        kind=image.kind,
        url=f"/v1/images/{image.id}",
        width=image.width,
        height=image.height,
        media_type=image.media_type,
    )
