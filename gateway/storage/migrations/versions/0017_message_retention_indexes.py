"""Indexes on the dates retention counts 7 years from for messages: when an outbox message was
written (delivered and dead-lettered ones go), and when an inbox id was received.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 16:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_DATES = (("outbox", "created_at"), ("inbox", "received_at"))


def upgrade() -> None:
    for table, column in _DATES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(_DATES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_{column}"))
