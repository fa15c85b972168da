"""Key rotation at rest: after `rewrap_sealed` and retiring the old key, every sealed value in every
table still opens (a rotation that re-wrapped the episodes only lost every request, outbox message,
received copy, override, transfer and held disclosure at the retirement)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Boolean, DateTime, Integer, LargeBinary, String, Table, insert, select

from gateway.protection import DecryptionError, KeyRing, associated_data, open_, seal
from gateway.storage import create_engine, rewrap_sealed, sealed_columns, upgrade

from ..conftest import Database

SEALED_TABLES = {
    "disclosure_approvals",
    "episodes",
    "notifications",
    "outbox",
    "overrides",
    "practitioner_requests",
    "received_children",
    "received_copies",
    "transfers",
}


def _row(table: Table, ring: KeyRing) -> dict[str, Any]:
    """A row of `table` with every column filled, the sealed one sealed under `ring` with the
    table's name bound in."""
    values: dict[str, Any] = {}
    for column in table.columns:
        kind = column.type
        if isinstance(kind, LargeBinary):
            plaintext = f"personal data of {table.name}".encode()
            values[column.name] = seal(plaintext, ring, associated_data(table.name)).to_bytes()
        elif column.name == "key_id":
            values[column.name] = ring.current
        elif isinstance(kind, String):
            values[column.name] = "1"
        elif isinstance(kind, Boolean):
            values[column.name] = False
        elif isinstance(kind, Integer):
            values[column.name] = 1
        elif isinstance(kind, DateTime):
            values[column.name] = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
        else:
            values[column.name] = None
    return values


def test_every_sealed_table_is_found() -> None:
    assert {table.name for table, _ in sealed_columns()} == SEALED_TABLES


async def test_rotation_then_retirement_keeps_every_sealed_value_readable(
    database: Database,
) -> None:
    old = KeyRing.generate("k1")
    ring = old.with_new_key()
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        sealed = sealed_columns()
        async with engine.begin() as connection:
            for table, _ in sealed:
                await connection.execute(insert(table).values(_row(table, old)))

        async with engine.begin() as connection:
            counts = await rewrap_sealed(connection, ring)
        assert counts == dict.fromkeys(counts, 1) and set(counts) == SEALED_TABLES
        async with engine.begin() as connection:  # idempotent: nothing left under the old key
            assert set((await rewrap_sealed(connection, ring)).values()) == {0}

        retired = ring.without_keys(["k1"])
        async with engine.connect() as connection:
            for table, column in sealed:
                key_id, blob = (await connection.execute(select(table.c.key_id, column))).one()
                assert key_id == retired.current
                assert open_(blob, retired, associated_data(table.name)) == (
                    f"personal data of {table.name}".encode()
                )
                with pytest.raises(DecryptionError):  # and the old ring alone no longer opens it
                    open_(blob, old, associated_data(table.name))
    finally:
        await engine.dispose()
