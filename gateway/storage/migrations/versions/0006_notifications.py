"""notifications: what holders told this member about episodes it takes part in (sealed);
the register's and received copies' basis uncut (it was 64 characters, and a withdrawal looks in it)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _basis_columns(type_: sa.types.TypeEngine[str]) -> None:
    # SQLite does not enforce a VARCHAR's length, so only PostgreSQL needs the column widened.
    if op.get_bind().dialect.name == "sqlite":
        return
    for table in ("register", "received_copies"):
        op.alter_column(table, "basis", type_=type_, existing_nullable=False)


def upgrade() -> None:
    _basis_columns(sa.Text())
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sender", sa.String(length=9), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("episode_ref", sa.String(length=36), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notifications_episode_ref"), ["episode_ref"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notifications_received_at"), ["received_at"], unique=False
        )


def downgrade() -> None:
    _basis_columns(sa.String(length=64))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_received_at"))
        batch_op.drop_index(batch_op.f("ix_notifications_episode_ref"))
    op.drop_table("notifications")
