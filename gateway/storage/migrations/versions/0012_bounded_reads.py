"""Bounded reads: a held disclosure's approval id beside its request, and the indexes the console's
federation page and the transfer checks read by; a disclosure's basis as long as its statement ids
(it was VARCHAR(64) while the code said Text: PostgreSQL refused a longer one)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 00:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


_BASIS = ("register", "received_copies")


def upgrade() -> None:
    for table in _BASIS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("basis", type_=sa.Text(), existing_nullable=False)
    with op.batch_alter_table("practitioner_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approval_id", sa.String(64), nullable=True))
        batch_op.create_index("ix_practitioner_requests_approval_id", ["approval_id"], unique=False)
    op.create_index("ix_transfers_episode_id", "transfers", ["episode_id"], unique=False)
    op.create_index("ix_transfers_state", "transfers", ["state"], unique=False)
    op.create_index(
        "ix_transfers_direction_created_at", "transfers", ["direction", "created_at"], unique=False
    )
    op.create_index("ix_inbox_sender_received_at", "inbox", ["sender", "received_at"], unique=False)
    op.create_index(
        "ix_register_counterpart_disclosed_at",
        "register",
        ["counterpart", "disclosed_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_register_counterpart_disclosed_at", table_name="register")
    op.drop_index("ix_inbox_sender_received_at", table_name="inbox")
    op.drop_index("ix_transfers_direction_created_at", table_name="transfers")
    op.drop_index("ix_transfers_state", table_name="transfers")
    op.drop_index("ix_transfers_episode_id", table_name="transfers")
    with op.batch_alter_table("practitioner_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_practitioner_requests_approval_id")
        batch_op.drop_column("approval_id")
    for table in _BASIS:  # PostgreSQL refuses this once a longer basis is stored
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("basis", type_=sa.String(64), existing_nullable=False)
