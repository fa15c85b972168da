"""The child of each episode another member answered this node's requests with (the match keys its
requests gave, a child section disclosed), sealed, with its blind indexes: the sharing register can
then be read per child on the side that received (DESIGN 3.8: "queryable per child (subject
access)").

Requests answered before this revision left nothing here: what they received is listed per episode
(`?episode=`) and per practitioner until `cafx register reindex` has read them.

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
        "received_children",
        sa.Column("episode_ref", sa.String(length=36), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("episode_ref", name=op.f("pk_received_children")),
    )
    with op.batch_alter_table("received_children", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_received_children_updated_at"), ["updated_at"], unique=False
        )
    op.create_table(
        "received_child_index",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("episode_ref", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["episode_ref"],
            ["received_children.episode_ref"],
            name=op.f("fk_received_child_index_episode_ref_received_children"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_child_index")),
        sa.UniqueConstraint(
            "episode_ref",
            "kind",
            "value",
            name=op.f("uq_received_child_index_episode_ref_kind_value"),
        ),
    )
    with op.batch_alter_table("received_child_index", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_received_child_index_kind_value"), ["kind", "value"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("received_child_index", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_received_child_index_kind_value"))
    op.drop_table("received_child_index")
    with op.batch_alter_table("received_children", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_received_children_updated_at"))
    op.drop_table("received_children")
