"""Alembic environment: migrations run on a connection handed in by `gateway.storage.upgrade`."""

from __future__ import annotations

from alembic import context

from gateway.storage._tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `cafx db upgrade`, which provides the connection")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
