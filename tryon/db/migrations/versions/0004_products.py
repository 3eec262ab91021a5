"""products: a shop's real products (photo, prepared image, attributes, labels); tryons.product_id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("shop_product_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("colour", sa.String(length=100), nullable=False),
        sa.Column("gender", sa.String(length=100), nullable=False),
        sa.Column("view", sa.String(length=16), nullable=False),
        sa.Column("photo_image_id", sa.String(length=32), nullable=False),
        sa.Column("image_id", sa.String(length=32), nullable=False),
        sa.Column("prep", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("view IN ('flat', 'on_model')", name=op.f("ck_products_view")),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name=op.f("fk_products_image_id_images")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_products_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["photo_image_id"], ["images.id"], name=op.f("fk_products_photo_image_id_images")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("owner_id", "shop_product_id", name=op.f("uq_products_owner_id_shop_product_id")),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        for column in ("owner_id", "category", "colour", "gender", "view"):
            batch_op.create_index(batch_op.f(f"ix_products_{column}"), [column], unique=False)
    with op.batch_alter_table("tryons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("product_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_tryons_product_id_products"), "products", ["product_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("tryons", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tryons_product_id_products"), type_="foreignkey")
        batch_op.drop_column("product_id")
    with op.batch_alter_table("products", schema=None) as batch_op:
        for column in ("view", "gender", "colour", "category", "owner_id"):
            batch_op.drop_index(batch_op.f(f"ix_products_{column}"))
    op.drop_table("products")
