"""disclosure approvals: disclosures held for the holder's lead CAF contact

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disclosure_approvals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("requester", sa.String(length=9), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_approvals")),
    )
    with op.batch_alter_table("disclosure_approvals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disclosure_approvals_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("disclosure_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disclosure_approvals_state"))
    op.drop_table("disclosure_approvals")
