"""A sharing register row the other member gave back: a transfer commit it refused, holding nothing
of it. The row stays (the episode did go to that member) and is marked, rather than deleted.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 19:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("register", schema=None) as batch_op:
        batch_op.add_column(sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("register", schema=None) as batch_op:
        batch_op.drop_column("returned_at")
