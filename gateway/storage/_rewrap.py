"""Key rotation at rest (`cafx keys rotate`): every sealed value in the database, in every table,
re-wrapped under the ring's current key-encryption key. Only the wrapped data key changes; the
ciphertext is kept byte for byte, so the associated data each writer bound in still opens it."""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary, Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..protection import KeyRing, rewrap
from ._tables import metadata

__all__ = ["rewrap_sealed", "sealed_columns"]


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


async def rewrap_sealed(connection: AsyncConnection, ring: KeyRing) -> dict[str, int]:
    """Re-wrap every value not yet under `ring.current`; how many per table. Idempotent, so an
    interrupted rotation is simply run again; old keys may be retired only after it completed."""
    counts: dict[str, int] = {}
    for table, column in sealed_columns():
        key = list(table.primary_key.columns)
        rows = await connection.execute(
            select(*key, column).where(table.c.key_id != ring.current, column.is_not(None))
        )
        count = 0
        for row in rows.all():
            sealed = rewrap(row[-1], ring)
            await connection.execute(
                update(table)
                .where(*(c == value for c, value in zip(key, row[:-1], strict=True)))
                .values({"key_id": sealed.key_id, column.name: sealed.to_bytes()})
            )
            count += 1
        counts[table.name] = count
    return counts
