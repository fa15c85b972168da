"""received_withdrawals: the consent withdrawals holders pushed, kept so that a disclosure answer
delivered after its withdrawal (messages to one member can overtake each other) is marked on arrival

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "received_withdrawals",
        sa.Column("holder", sa.String(length=9), nullable=False),
        sa.Column("episode_ref", sa.String(length=36), nullable=False),
        sa.Column("consent_id", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "holder", "episode_ref", "consent_id", name=op.f("pk_received_withdrawals")
        ),
    )


def downgrade() -> None:
    op.drop_table("received_withdrawals")
