"""The catalog (catalog_items, catalog_fills), garment transfer results, outfit latents, try-on catalog ids.

- catalog_items: the shared catalog (generated on first use, or saved by designers), with the
  friendly label fields as indexed columns for filtering; catalog_fills: one row per checkpoint
  whose catalog was generated (the row is the fill lock).
- garments: flat_image_id, on_model_image_id, outfit_id, labels, metrics (what the transfer made).
- outfits: latent_sha256 (W+ npz blob), params (how a variant / transfer made it).
- tryons: catalog_id (the catalog item tried on).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_fills",
        sa.Column("checkpoint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('filling', 'done')", name=op.f("ck_catalog_fills_status")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_catalog_fills_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("checkpoint", name=op.f("pk_catalog_fills")),
    )
    with op.batch_alter_table("catalog_fills", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_fills_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "catalog_items",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("slot", sa.String(length=100), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("colour", sa.String(length=100), nullable=True),
        sa.Column("gender", sa.String(length=100), nullable=True),
        sa.Column("view", sa.String(length=100), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("truncation", sa.Float(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("checkpoint", sa.String(length=64), nullable=True),
        sa.Column("image_id", sa.String(length=32), nullable=False),
        sa.Column("outfit_id", sa.String(length=32), nullable=True),
        sa.Column("latent_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('generated', 'designer')", name=op.f("ck_catalog_items_source")),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_catalog_items_image_id_images"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["latent_sha256"], ["blobs.sha256"], name=op.f("fk_catalog_items_latent_sha256_blobs")),
        sa.ForeignKeyConstraint(
            ["outfit_id"], ["outfits.id"], name=op.f("fk_catalog_items_outfit_id_outfits"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_catalog_items_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_items")),
        sa.UniqueConstraint("slot", name=op.f("uq_catalog_items_slot")),
    )
    with op.batch_alter_table("catalog_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_items_category"), ["category"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_items_colour"), ["colour"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_items_gender"), ["gender"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_items_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_items_source"), ["source"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_items_view"), ["view"], unique=False)

    with op.batch_alter_table("garments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flat_image_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("on_model_image_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("outfit_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("labels", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("metrics", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_garments_on_model_image_id_images"),
            "images",
            ["on_model_image_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_garments_flat_image_id_images"), "images", ["flat_image_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_garments_outfit_id_outfits"), "outfits", ["outfit_id"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("outfits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("latent_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_outfits_latent_sha256_blobs"), "blobs", ["latent_sha256"], ["sha256"]
        )

    with op.batch_alter_table("tryons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("catalog_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_tryons_catalog_id_catalog_items"),
            "catalog_items",
            ["catalog_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("tryons", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tryons_catalog_id_catalog_items"), type_="foreignkey")
        batch_op.drop_column("catalog_id")

    with op.batch_alter_table("outfits", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outfits_latent_sha256_blobs"), type_="foreignkey")
        batch_op.drop_column("params")
        batch_op.drop_column("latent_sha256")

    with op.batch_alter_table("garments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_garments_outfit_id_outfits"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_garments_flat_image_id_images"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_garments_on_model_image_id_images"), type_="foreignkey")
        batch_op.drop_column("metrics")
        batch_op.drop_column("labels")
        batch_op.drop_column("outfit_id")
        batch_op.drop_column("on_model_image_id")
        batch_op.drop_column("flat_image_id")

    with op.batch_alter_table("catalog_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_items_view"))
        batch_op.drop_index(batch_op.f("ix_catalog_items_source"))
        batch_op.drop_index(batch_op.f("ix_catalog_items_owner_id"))
        batch_op.drop_index(batch_op.f("ix_catalog_items_gender"))
        batch_op.drop_index(batch_op.f("ix_catalog_items_colour"))
        batch_op.drop_index(batch_op.f("ix_catalog_items_category"))

    op.drop_table("catalog_items")
    with op.batch_alter_table("catalog_fills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_fills_owner_id"))

    op.drop_table("catalog_fills")
