"""SQLAlchemy 2 table models of the service. Rows hold metadata; bytes live in the blob store.

Who owns what:

    owners ─┬─ sessions        anonymous shopper sessions (bearer token, stored as sha256)
            ├─ api_keys        shop backends / designers / admins (X-API-Key, stored as sha256)
            ├─ images ──▶ blobs          every stored picture; `face_id` marks images derived from a face
            ├─ faces                     an uploaded face photo (+ latents once projected)
            │    ├─ edits               attribute edits of a face
            │    └─ tryons              a face put onto an outfit / garment
            ├─ outfits                   generated outfit images (labels, seed, truncation)
            ├─ garments                  uploaded garment photos (garment transfer)
            ├─ catalog_items             the shared catalog (generated on first use, or saved by designers)
            ├─ products                  a shop's real products (photo + prepared image + labels), by shop id
            └─ jobs                      slow work: status, progress, result, error, retries

Deleting a face deletes (ON DELETE CASCADE, and explicitly in `repositories.delete_face`) its
edits, try-ons and every image whose `face_id` is the face; blobs nobody refers to any more are then
removed from disk. New pipelines that derive an image from a face set `face_id` on it, and it is
covered by the same guarantee.

Times are timezone-aware UTC datetimes on both SQLite and PostgreSQL (see `UTCDateTime`). Ids are
random 32-character hex strings (uuid4), so they reveal nothing and are unguessable.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Constraint names are fixed so that Alembic migrations name them the same on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 32                          # uuid4().hex
SHA256_LENGTH = 64                      # Hex digest.


def new_id() -> str:
    """A fresh random row id (32 hex characters)."""
    return uuid.uuid4().hex


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values: we add UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(datetime.UTC)")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON()}


def _id() -> Mapped[str]:
    return mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)


def _owner_fk() -> Mapped[str]:
    return mapped_column(String(ID_LENGTH), ForeignKey("owners.id", ondelete="CASCADE"), index=True)


def _created() -> Mapped[dt.datetime]:
    return mapped_column(default=utcnow)


# ----------------------------------------------------------------------------------------------------
# Callers.


class OwnerKind(enum.StrEnum):
    SESSION = "session"                 # An anonymous shopper (POST /v1/sessions).
    CLIENT = "client"                   # A shop backend, designer or admin (holds API keys).


class Scope(enum.StrEnum):
    SHOP = "shop"                       # Shopper operations: catalog, outfits, faces, try-on.
    DESIGNER = "designer"               # Garment variants, saving to the catalog.
    ADMIN = "admin"                     # Everything, including managing keys.


class Owner(Base):
    """Whoever owns uploads and results: one anonymous session or one API client."""

    __tablename__ = "owners"
    __table_args__ = (CheckConstraint("kind IN ('session', 'client')", name="kind"),)

    id: Mapped[str] = _id()
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = _created()


class SessionToken(Base):
    """An anonymous shopper session. Only the sha256 of the bearer token is stored."""

    __tablename__ = "sessions"

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()
    token_hash: Mapped[str] = mapped_column(String(SHA256_LENGTH), unique=True)
    created_at: Mapped[dt.datetime] = _created()
    expires_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime | None]


class ApiKey(Base):
    """An API key. Only its sha256 is stored; `prefix` (the first characters) identifies it in lists."""

    __tablename__ = "api_keys"

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(SHA256_LENGTH), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))  # Space-separated `Scope` values.
    created_at: Mapped[dt.datetime] = _created()
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


# ----------------------------------------------------------------------------------------------------
# Stored bytes.


class Blob(Base):
    """Bytes in the content-addressed blob store (`tryon.db.blobs`), named by their sha256."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)         # Bytes.
    media_type: Mapped[str] = mapped_column(String(100))  # E.g. "image/png", "application/x-npz".
    created_at: Mapped[dt.datetime] = _created()


class Image(Base):
    """A stored picture: an upload, an aligned face, a generated outfit, an edit, a try-on."""

    __tablename__ = "images"

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()
    blob_sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH), ForeignKey("blobs.sha256"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "face_photo", "face_aligned", "outfit", ...
    media_type: Mapped[str] = mapped_column(String(100))
    width: Mapped[int] = mapped_column(Integer)  # Pixels.
    height: Mapped[int] = mapped_column(Integer)
    # Set on every image derived from a face, so deleting the face deletes it.
    face_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("faces.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = _created()


# ----------------------------------------------------------------------------------------------------
# Slow work.


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobKind(enum.StrEnum):
    """The job types the service registers (`Job.kind`, the names in the job registry)."""

    OUTFIT_GENERATE = "outfit.generate"
    GARMENT_TRANSFER = "garment.transfer"
    FACE_PROJECT = "face.project"
    FACE_REFINE = "face.refine"
    FACE_COMPOSE = "face.compose"
    TRYON_RENDER = "tryon.render"
    PRODUCTS_IMPORT_DEMO = "products.import_demo"


class ImageKind(enum.StrEnum):
    """What a stored image is (`Image.kind`)."""

    FACE_PHOTO = "face_photo"                   # The uploaded photo.
    FACE_ALIGNED = "face_aligned"               # The aligned crop that is projected.
    FACE_ALIGNED_HR = "face_aligned_hr"         # The same crop at the photo's own resolution: the try-on's face.
    FACE_RECONSTRUCTION = "face_reconstruction"
    FACE_EDIT = "face_edit"
    OUTFIT = "outfit"
    CATALOG = "catalog"
    VARIANT = "variant"
    GARMENT_PHOTO = "garment_photo"
    GARMENT_FRAMED = "garment_framed"
    GARMENT_FLAT = "garment_flat"
    GARMENT_ON_MODEL = "garment_on_model"
    TRYON = "tryon"
    PRODUCT_PHOTO = "product_photo"             # A product's photo as imported.
    PRODUCT_IMAGE = "product_image"             # The prepared square image.


class Job(Base):
    """One piece of slow work. This table, not the queue, is the source of truth for its state.

    A worker claims a queued job by setting a fresh `claim_token` and a lease; it renews the lease
    while it works (heartbeat) and writes progress/result only while its token is still the job's.
    A running job whose lease has expired belonged to a dead worker: it is queued again (until
    `max_attempts` tries) by `repositories.requeue_stale_jobs`.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key"),
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()
    kind: Mapped[str] = mapped_column(String(64))  # A name in the job registry, e.g. "face.project".
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1.
    message: Mapped[str | None] = mapped_column(String(500))     # What the job is doing now.
    payload: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # Tries started so far.
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(SHA256_LENGTH))  # sha256 of kind + payload.
    claim_token: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    lease_expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = _created()
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# ----------------------------------------------------------------------------------------------------
# What users make.


class Face(Base):
    """An uploaded face photo. Its images carry `face_id`; its latents are a blob once projected."""

    __tablename__ = "faces"

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()
    status: Mapped[str] = mapped_column(String(16))  # "uploaded", "projecting", "projected"; the API adds "failed".
    alignment: Mapped[dict[str, Any] | None]         # What the aligner reports (landmarks, box...).
    latent_sha256: Mapped[str | None] = mapped_column(String(SHA256_LENGTH), ForeignKey("blobs.sha256"))
    projection_job_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = _created()


class Edit(Base):
    """An attribute edit of a face (strengths per direction); its image carries the face's id."""

    __tablename__ = "edits"

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()
    face_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    params: Mapped[dict[str, Any]]
    image_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("images.id", ondelete="SET NULL"))
    latent_sha256: Mapped[str | None] = mapped_column(String(SHA256_LENGTH), ForeignKey("blobs.sha256"))
    created_at: Mapped[dt.datetime] = _created()
    # Since 0003: the job that makes it (a region composition); image and latent are set when it succeeds.
    job_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("jobs.id", ondelete="SET NULL"))


class Outfit(Base):
    """A generated outfit image: which labels, seed and truncation, from which checkpoint."""

    __tablename__ = "outfits"

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()
    labels: Mapped[dict[str, Any]]      # {label name: value} of the schema.
    seed: Mapped[int] = mapped_column(BigInteger)
    truncation: Mapped[float] = mapped_column(Float)
    checkpoint: Mapped[str] = mapped_column(String(SHA256_LENGTH))  # sha256 of the checkpoint's config.json.
    image_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("images.id"))
    created_at: Mapped[dt.datetime] = _created()
    # Since 0002: the W+ latent (npz blob) and how a variant / transfer made it (None: labels + seed).
    latent_sha256: Mapped[str | None] = mapped_column(String(SHA256_LENGTH), ForeignKey("blobs.sha256"))
    params: Mapped[dict[str, Any] | None]


class Garment(Base):
    """An uploaded garment photo, projected for garment transfer."""

    __tablename__ = "garments"

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()
    status: Mapped[str] = mapped_column(String(16))
    photo_image_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("images.id"))
    latent_sha256: Mapped[str | None] = mapped_column(String(SHA256_LENGTH), ForeignKey("blobs.sha256"))
    job_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = _created()
    # Since 0002: what the transfer made (status "transferred").
    flat_image_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("images.id", ondelete="SET NULL"))
    on_model_image_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("images.id", ondelete="SET NULL")
    )
    outfit_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("outfits.id", ondelete="SET NULL"))
    labels: Mapped[dict[str, Any] | None]   # Estimated labels of the garment (view "flat").
    metrics: Mapped[dict[str, Any] | None]  # Colour fidelity, category agreement, projection losses.


class TryOn(Base):
    """A face put onto an outfit or garment; its image carries the face's id."""

    __tablename__ = "tryons"

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()
    face_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    outfit_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("outfits.id", ondelete="SET NULL"))
    garment_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("garments.id", ondelete="SET NULL"))
    edits: Mapped[dict[str, Any] | None]
    image_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("images.id", ondelete="SET NULL"))
    job_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = _created()
    # Since 0002: the catalog item tried on, when the request named one.
    catalog_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("catalog_items.id", ondelete="SET NULL")
    )
    # Since 0004: the shop product tried on, when the request named one.
    product_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("products.id", ondelete="SET NULL"))


# ----------------------------------------------------------------------------------------------------
# The catalog (since 0002).


class CatalogSource(enum.StrEnum):
    GENERATED = "generated"             # Made by the service on first use (deterministic seeds).
    DESIGNER = "designer"               # Saved by a designer (POST /v1/catalog).


class CatalogItem(Base):
    """A garment in the shared catalog: every caller may list it and read its image.

    The label columns (category, colour, gender, view) copy the friendly fields out of `labels` so
    that filters are plain SQL on both SQLite and PostgreSQL. `slot` names a generated item's place
    ("<checkpoint prefix>:<index>"), unique, so a catalog is never generated twice.
    """

    __tablename__ = "catalog_items"
    __table_args__ = (CheckConstraint("source IN ('generated', 'designer')", name="source"),)

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()  # The catalog's owner (generated) or the designer's.
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16), index=True)
    slot: Mapped[str | None] = mapped_column(String(100), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # Listing order (generated items).
    labels: Mapped[dict[str, Any]]
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    colour: Mapped[str | None] = mapped_column(String(100), index=True)
    gender: Mapped[str | None] = mapped_column(String(100), index=True)
    view: Mapped[str | None] = mapped_column(String(100), index=True)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    truncation: Mapped[float | None] = mapped_column(Float)
    params: Mapped[dict[str, Any] | None]
    checkpoint: Mapped[str | None] = mapped_column(String(SHA256_LENGTH))
    image_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("images.id", ondelete="CASCADE"))
    outfit_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("outfits.id", ondelete="SET NULL"))
    latent_sha256: Mapped[str | None] = mapped_column(String(SHA256_LENGTH), ForeignKey("blobs.sha256"))
    created_at: Mapped[dt.datetime] = _created()


class CatalogFill(Base):
    """One generation of the shipped catalog for a checkpoint: the row is the lock (its primary key
    lets one process claim the fill; the others wait for status "done")."""

    __tablename__ = "catalog_fills"
    __table_args__ = (CheckConstraint("status IN ('filling', 'done')", name="status"),)

    checkpoint: Mapped[str] = mapped_column(String(SHA256_LENGTH), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[str] = _owner_fk()  # Owner of the generated items and their images.
    items: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]


# ----------------------------------------------------------------------------------------------------
# Shop products (since 0004).


class Product(Base):
    """A shop's real product: its photo, the prepared (normalized) image, its attributes and labels.

    Owned by the shop (the owner of the API key that imported it) and unique per shop by the shop's
    own product id (`shop_product_id`): importing the same id again updates this row. Every caller
    may list products and read their images (the storefront shows them). The friendly label fields
    (category, colour, gender, view) are copied out of `labels` for plain-SQL filters, as on
    catalog_items.
    """

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("owner_id", "shop_product_id"),
        CheckConstraint("view IN ('flat', 'on_model')", name="view"),
    )

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner_fk()
    shop_product_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    attributes: Mapped[dict[str, Any]]  # The shop's values, in the catalog's vocabulary (articleType, ...).
    labels: Mapped[dict[str, Any]]      # The fashion model's groups: articleGroup, colourGroup, gender, view.
    category: Mapped[str] = mapped_column(String(100), index=True)
    colour: Mapped[str] = mapped_column(String(100), index=True)
    gender: Mapped[str] = mapped_column(String(100), index=True)
    view: Mapped[str] = mapped_column(String(16), index=True)
    photo_image_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("images.id"))  # As uploaded (upright).
    image_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("images.id"))        # Prepared, square.
    prep: Mapped[dict[str, Any]]        # What the preparation measured (frame, transform, landmarks).
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
