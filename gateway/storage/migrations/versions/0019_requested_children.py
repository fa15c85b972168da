"""Blind indexes of the child each answered request named, so that the sharing register can be read
per child on the side that received (DESIGN 3.8: "queryable per child (subject access)").

Requests answered before this revision have no rows: what they received is still listed per episode
(`?episode=`) and per practitioner, not per child.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 22:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requested_children",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["practitioner_requests.id"],
            name=op.f("fk_requested_children_request_id_practitioner_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requested_children")),
        sa.UniqueConstraint(
            "request_id", "kind", "value", name=op.f("uq_requested_children_request_id_kind_value")
        ),
    )
    with op.batch_alter_table("requested_children", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_requested_children_kind_value"), ["kind", "value"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("requested_children", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_requested_children_kind_value"))
    op.drop_table("requested_children")
