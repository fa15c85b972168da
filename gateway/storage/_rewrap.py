"""Key rotation at rest (`cafx keys rotate`): every sealed value in the database, in every table,
re-wrapped under the ring's current key-encryption key. Only the wrapped data key changes; the
ciphertext is kept byte for byte, so the associated data each writer bound in still opens it.

Nodes keep writing while this runs, so each re-wrapped value is written back only if the row still
holds the value that was read (compare and swap): a row a node changed meanwhile is read again and
re-wrapped again, never overwritten with the document it held before.

Rows are read and re-wrapped `BATCH_ROWS` at a time, in primary-key order. Called on a connection
outside a transaction (`cafx keys rotate`), each batch is committed on its own: SQLite has one
writer, and a rotation held in one transaction locked the node's writers out for all of it (they
gave up after the 5 s busy timeout). After each batch on SQLite the rewrap pauses long enough for a
waiting writer's next try to find the lock free. Inside a transaction the caller began, everything
commits with it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, LargeBinary, Table, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..protection import KeyRing, rewrap
from ._tables import metadata

__all__ = ["BATCH_ROWS", "old_keys_in_use", "rewrap_sealed", "sealed_columns"]

BATCH_ROWS = 500  # rows re-wrapped per transaction: about 0.1 s of SQLite's write lock
# SQLite's busy handler retries a waiting writer at most 100 ms apart: a longer gap between two
# batches lets it in.
_SQLITE_PAUSE = 0.12

# A row changed again each time it was read is left for the next run (`old_keys_in_use` shows it).
_ATTEMPTS = 3


def sealed_columns() -> list[tuple[Table, Column[bytes]]]:
    """Each table's sealed column: its one binary column, beside the `key_id` that names the key
    wrapping it. A binary column anywhere else is a table this rotation would miss: refused."""
    found: list[tuple[Table, Column[bytes]]] = []
    for table in metadata.sorted_tables:
        blobs = [c for c in table.columns if isinstance(c.type, LargeBinary)]
        if not blobs:
            continue
        if len(blobs) != 1 or "key_id" not in table.c:
            raise RuntimeError(f"table {table.name}: a sealed column needs its own key_id column")
        found.append((table, blobs[0]))
    return found


def _not_current(table: Table, column: Column[bytes], current: str) -> ColumnElement[bool]:
    return column.is_not(None) & or_(table.c.key_id.is_(None), table.c.key_id != current)


async def rewrap_sealed(connection: AsyncConnection, ring: KeyRing) -> dict[str, int]:
    """Re-wrap every value not yet under `ring.current`; how many per table. Idempotent, so an
    interrupted rotation is simply run again; old keys may be retired only when `old_keys_in_use`
    finds none. Outside a transaction, a batch is committed at a time (see above)."""
    own = not connection.in_transaction()
    pause = _SQLITE_PAUSE if own and connection.dialect.name == "sqlite" else 0.0
    current = ring.current
    counts: dict[str, int] = {}
    for table, column in sealed_columns():
        key = list(table.primary_key.columns)
        count, after = 0, None
        while True:
            query = select(*key, column).where(_not_current(table, column, current))
            if after is not None:  # rows left under an old key (changed on every try) stay behind
                query = query.where(tuple_(*key) > tuple_(*after))
            rows = (await connection.execute(query.order_by(*key).limit(BATCH_ROWS))).all()
            for row in rows:
                where = [c == value for c, value in zip(key, row[:-1], strict=True)]
                count += await _rewrap_row(connection, table, column, where, row[-1], ring)
            if own:
                await connection.commit()
            if len(rows) < BATCH_ROWS:
                break
            after = tuple(rows[-1][:-1])
            await asyncio.sleep(pause)
        counts[table.name] = count
    return counts


async def _rewrap_row(
    connection: AsyncConnection,
    table: Table,
    column: Column[bytes],
    where: Sequence[ColumnElement[bool]],
    blob: bytes,
    ring: KeyRing,
) -> int:
    """1 when this row's value was re-wrapped; 0 when it is gone, already under the current key
    (a node rewrote it under the new key), or changed under an old key on every attempt."""
    for _ in range(_ATTEMPTS):
        sealed = rewrap(blob, ring)
        written = await connection.execute(
            update(table)
            .where(*where, column == blob)
            .values({"key_id": sealed.key_id, column.name: sealed.to_bytes()})
        )
        if written.rowcount == 1:
            return 1
        again: Any = await connection.scalar(
            select(column).where(*where, _not_current(table, column, sealed.key_id))
        )
        if again is None:
            return 0
        blob = again
    return 0


async def old_keys_in_use(connection: AsyncConnection, current: str) -> dict[str, int]:
    """How many sealed values, over every table, each key id other than `current` still wraps (a
    value without a key id counts under ""). Empty: the other keys can be retired."""
    found: dict[str, int] = {}
    for table, column in sealed_columns():
        rows = await connection.execute(
            select(table.c.key_id, func.count())
            .where(_not_current(table, column, current))
            .group_by(table.c.key_id)
        )
        for key_id, count in rows.all():
            found[key_id or ""] = found.get(key_id or "", 0) + count
    return found
