"""blind_index_key: the fingerprint of the key the blind indexes were made with, so a node started
with another index key refuses to start instead of answering every search and existence check
`not_found` (`KeyRing.index_fingerprint`)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blind_index_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blind_index_key")),
    )


def downgrade() -> None:
    op.drop_table("blind_index_key")
