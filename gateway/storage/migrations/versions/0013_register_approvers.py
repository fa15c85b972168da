"""The sharing register names everyone who approved (DESIGN 3.8): beside the requesting borough's lead
contact, the second approver of a public-interest override and the holder's lead contact who released
a held disclosure; and it is read per practitioner as well as per child

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 02:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("register", schema=None) as batch_op:
        batch_op.add_column(sa.Column("second_approved_by", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("holder_approved_by", sa.String(200), nullable=True))
    op.create_index(
        "ix_register_requested_by_disclosed_at",
        "register",
        ["requested_by", "disclosed_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_register_requested_by_disclosed_at", table_name="register")
    with op.batch_alter_table("register", schema=None) as batch_op:
        batch_op.drop_column("holder_approved_by")
        batch_op.drop_column("second_approved_by")
