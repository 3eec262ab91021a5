"""Initial schema: owners, sessions, API keys, blobs, images, jobs, faces, edits, outfits, garments, try-ons.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    op.create_table(
        "owners",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('session', 'client')", name=op.f("ck_owners_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owners")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_api_keys_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_owner_id"), "api_keys", ["owner_id"], unique=False)
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name=op.f("ck_jobs_status")),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_jobs_progress")),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], name=op.f("fk_jobs_owner_id_owners"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("owner_id", "idempotency_key", name=op.f("uq_jobs_owner_id_idempotency_key")),
    )
    op.create_index(op.f("ix_jobs_owner_id"), "jobs", ["owner_id"], unique=False)
    op.create_index(op.f("ix_jobs_status_lease"), "jobs", ["status", "lease_expires_at"], unique=False)
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_sessions_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )
    op.create_index(op.f("ix_sessions_owner_id"), "sessions", ["owner_id"], unique=False)
    op.create_table(
        "faces",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("alignment", sa.JSON(), nullable=True),
        sa.Column("latent_sha256", sa.String(length=64), nullable=True),
        sa.Column("projection_job_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["latent_sha256"], ["blobs.sha256"], name=op.f("fk_faces_latent_sha256_blobs")),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], name=op.f("fk_faces_owner_id_owners"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["projection_job_id"], ["jobs.id"], name=op.f("fk_faces_projection_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faces")),
    )
    op.create_index(op.f("ix_faces_owner_id"), "faces", ["owner_id"], unique=False)
    op.create_table(
        "images",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("face_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["blob_sha256"], ["blobs.sha256"], name=op.f("fk_images_blob_sha256_blobs")),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], name=op.f("fk_images_face_id_faces"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_images_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
    )
    op.create_index(op.f("ix_images_blob_sha256"), "images", ["blob_sha256"], unique=False)
    op.create_index(op.f("ix_images_face_id"), "images", ["face_id"], unique=False)
    op.create_index(op.f("ix_images_owner_id"), "images", ["owner_id"], unique=False)
    op.create_table(
        "edits",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("face_id", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("image_id", sa.String(length=32), nullable=True),
        sa.Column("latent_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], name=op.f("fk_edits_face_id_faces"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_edits_image_id_images"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["latent_sha256"], ["blobs.sha256"], name=op.f("fk_edits_latent_sha256_blobs")),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], name=op.f("fk_edits_owner_id_owners"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edits")),
    )
    op.create_index(op.f("ix_edits_face_id"), "edits", ["face_id"], unique=False)
    op.create_index(op.f("ix_edits_owner_id"), "edits", ["owner_id"], unique=False)
    op.create_table(
        "garments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("photo_image_id", sa.String(length=32), nullable=False),
        sa.Column("latent_sha256", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_garments_job_id_jobs"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["latent_sha256"], ["blobs.sha256"], name=op.f("fk_garments_latent_sha256_blobs")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_garments_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["photo_image_id"], ["images.id"], name=op.f("fk_garments_photo_image_id_images")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garments")),
    )
    op.create_index(op.f("ix_garments_owner_id"), "garments", ["owner_id"], unique=False)
    op.create_table(
        "outfits",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("truncation", sa.Float(), nullable=False),
        sa.Column("checkpoint", sa.String(length=64), nullable=False),
        sa.Column("image_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name=op.f("fk_outfits_image_id_images")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_outfits_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outfits")),
    )
    op.create_index(op.f("ix_outfits_owner_id"), "outfits", ["owner_id"], unique=False)
    op.create_table(
        "tryons",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("face_id", sa.String(length=32), nullable=False),
        sa.Column("outfit_id", sa.String(length=32), nullable=True),
        sa.Column("garment_id", sa.String(length=32), nullable=True),
        sa.Column("edits", sa.JSON(), nullable=True),
        sa.Column("image_id", sa.String(length=32), nullable=True),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], name=op.f("fk_tryons_face_id_faces"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["garment_id"], ["garments.id"], name=op.f("fk_tryons_garment_id_garments"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_tryons_image_id_images"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_tryons_job_id_jobs"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["outfit_id"], ["outfits.id"], name=op.f("fk_tryons_outfit_id_outfits"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_tryons_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tryons")),
    )
    op.create_index(op.f("ix_tryons_face_id"), "tryons", ["face_id"], unique=False)
    op.create_index(op.f("ix_tryons_owner_id"), "tryons", ["owner_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tryons_owner_id"), table_name="tryons")
    op.drop_index(op.f("ix_tryons_face_id"), table_name="tryons")

    op.drop_table("tryons")
    op.drop_index(op.f("ix_outfits_owner_id"), table_name="outfits")

    op.drop_table("outfits")
    op.drop_index(op.f("ix_garments_owner_id"), table_name="garments")

    op.drop_table("garments")
    op.drop_index(op.f("ix_edits_owner_id"), table_name="edits")
    op.drop_index(op.f("ix_edits_face_id"), table_name="edits")

    op.drop_table("edits")
    op.drop_index(op.f("ix_images_owner_id"), table_name="images")
    op.drop_index(op.f("ix_images_face_id"), table_name="images")
    op.drop_index(op.f("ix_images_blob_sha256"), table_name="images")

    op.drop_table("images")
    op.drop_index(op.f("ix_faces_owner_id"), table_name="faces")

    op.drop_table("faces")
    op.drop_index(op.f("ix_sessions_owner_id"), table_name="sessions")

    op.drop_table("sessions")
    op.drop_index(op.f("ix_jobs_status_lease"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_owner_id"), table_name="jobs")

    op.drop_table("jobs")
    op.drop_index(op.f("ix_api_keys_owner_id"), table_name="api_keys")

    op.drop_table("api_keys")
    op.drop_table("owners")
    op.drop_table("blobs")
