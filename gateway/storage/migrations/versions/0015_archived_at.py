"""episodes.archived_at: when the episode was archived here, so it is purged only after 6 years
archived (DESIGN 3.6), however early its closure was dated; episodes already archived count from
their last change. transfers.kept_consent_ids: the statement ids of a transferred-out copy purged
since, so a withdrawal is still passed back along the chain of holders.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE episodes SET archived_at = updated_at WHERE state = 'archived'")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kept_consent_ids", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_column("kept_consent_ids")
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
