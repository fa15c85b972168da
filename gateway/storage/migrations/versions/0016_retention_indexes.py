"""Indexes on the dates retention counts 7 years from (gateway/retention/_records.py), so a pass
that finds nothing due reads an index, not a whole table.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 15:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_DATES = (
    ("practitioner_requests", "created_at"),
    ("received_copies", "received_at"),
    ("overrides", "created_at"),
    ("disclosure_approvals", "received_at"),
    ("transfers", "updated_at"),
    ("idempotency_keys", "created_at"),
)


def upgrade() -> None:
    for table, column in _DATES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(_DATES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_{column}"))
