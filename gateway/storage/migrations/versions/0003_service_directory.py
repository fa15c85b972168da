"""service directory

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_services",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("authority", sa.String(length=9), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_services")),
    )
    with op.batch_alter_table("directory_services", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_directory_services_authority"), ["authority"], unique=False
        )
    op.create_table(
        "directory_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_generation")),
    )
    generation = sa.table("directory_generation", sa.column("id"), sa.column("generation"))
    op.bulk_insert(generation, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    with op.batch_alter_table("directory_services", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_services_authority"))
    op.drop_table("directory_services")
    op.drop_table("directory_generation")
