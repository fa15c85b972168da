"""Retention of the records other than episodes (gateway/retention/_records.py), on SQLite and
PostgreSQL: each goes (or, a transfer offer that moved nothing, loses its sealed part) on the London
day 7 years after it came, not a day before; what is still needed is left alone; each removal is
audited once, also with two replicas passing at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from pytest_aiohttp import AiohttpClient
from sqlalchemy import Boolean, DateTime, Integer, LargeBinary, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit_log import AuditLog
from gateway.keys import AUDIT, ENGINE
from gateway.retention import RETENTION_ACTOR, _records
from gateway.retention._records import RULES, kept_until, remove_old_records
from gateway.signing import load_signing_key
from gateway.storage import create_engine
from gateway.storage._tables import (
    audit_entries,
    disclosure_approvals,
    idempotency_keys,
    inbox,
    notifications,
    outbox,
    overrides,
    practitioner_requests,
    received_copies,
    transfers,
)
from schemas import LONDON

from ..conftest import Database
from .node import MEMBER
from .test_retention import TODAY, _node, _pass

# Came on the last London day that goes on TODAY, and on the first that stays.
_LAST_DAY_GONE = dt.datetime(2019, 12, 7, 23, 59, tzinfo=LONDON)
_FIRST_DAY_KEPT = dt.datetime(2019, 12, 8, 0, 1, tzinfo=LONDON)


def _row(table: Table, at: dt.datetime, **values: Any) -> dict[str, Any]:
    """A row of `table` that came `at`: every column that must be filled is, with a neutral value."""
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.nullable and not column.primary_key:
            continue
        kind = column.type
        if isinstance(kind, DateTime):
            row[column.name] = at.astimezone(dt.UTC)
        elif isinstance(kind, Boolean):
            row[column.name] = False
        elif isinstance(kind, Integer):
            row[column.name] = 0
        elif isinstance(kind, LargeBinary):
            row[column.name] = b"sealed"
        elif isinstance(kind, String) and kind.length is not None:
            row[column.name] = "x" * min(kind.length, 8)
        else:
            row[column.name] = "[]"
    return row | ({"id": str(uuid.uuid4())} if "id" in table.c else {}) | values


_SEALED: dict[str, Any] = {"key_id": "k1", "sealed": b"sealed"}

# One old and one recent record each rule covers, and old ones it must leave alone. Transfers as
# the workflow leaves them: sealed on the holder's side from the offer, on the receiver's from
# its acceptance.
_COVERED: list[tuple[Table, dict[str, Any]]] = [
    (practitioner_requests, {"state": "answered"}),
    (practitioner_requests, {"state": "awaiting_holder"}),
    (received_copies, {}),
    (overrides, {}),
    (disclosure_approvals, {"state": "approved"}),
    (notifications, {}),
    (outbox, {"state": "dead"}),
    (outbox, {"state": "delivered"}),  # its body cleared on delivery: the row is all that is left
    (transfers, {"state": "withdrawn", "direction": "out", **_SEALED}),
    (transfers, {"state": "declined", "direction": "out", **_SEALED}),
    (transfers, {"state": "released", "direction": "in", **_SEALED}),
]
_LEFT_ALONE: list[tuple[Table, dict[str, Any]]] = [
    (practitioner_requests, {"state": "approved"}),  # being sent: it settles first
    (outbox, {"state": "pending", "kind": "consent_withdrawn"}),  # retried until delivered
    (outbox, {"state": "pending", "kind": "transfer_commit"}),
    (transfers, {"state": "committed", "direction": "out", **_SEALED}),  # its episode's to clear
    (transfers, {"state": "offered", "direction": "out", **_SEALED}),  # under way
    (transfers, {"state": "accepted", "direction": "in", **_SEALED}),
]


async def _insert(engine: AsyncEngine, rows: list[tuple[Table, dict[str, Any]]]) -> None:
    async with engine.begin() as connection:
        for table, row in rows:
            await connection.execute(insert(table).values(row))


async def _present(engine: AsyncEngine, table: Table, row_id: str) -> dict[str, Any] | None:
    async with engine.connect() as connection:
        found = (await connection.execute(select(table).where(table.c.id == row_id))).one_or_none()
    return None if found is None else dict(found._mapping)


async def _removals(engine: AsyncEngine) -> list[tuple[str, str | None, str]]:
    actions = [rule.action for rule in RULES]
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(audit_entries.c.action, audit_entries.c.subject, audit_entries.c.actor)
            .where(audit_entries.c.action.in_(actions))
            .order_by(audit_entries.c.sequence)
        )
        return [(r.action, r.subject, r.actor) for r in rows]


def test_a_record_goes_on_the_london_day_seven_years_after_it_came() -> None:
    before = kept_until(TODAY)
    assert _LAST_DAY_GONE.astimezone(dt.UTC) < before <= _FIRST_DAY_KEPT.astimezone(dt.UTC)
    assert before == dt.datetime(2019, 12, 8, tzinfo=LONDON)  # midnight in London, not in UTC
    summer = kept_until(dt.date(2026, 7, 1))
    assert summer == dt.datetime(2019, 7, 1, 23, tzinfo=dt.UTC)  # BST: an hour before UTC's
    # As stored: SQLite compares the wall-clock text, so the bound must be UTC's.
    assert before.utcoffset() == summer.utcoffset() == dt.timedelta(0)
    # As an episode's purge: 29 February 2024 + 7 years is 28 February 2031.
    assert kept_until(dt.date(2031, 2, 27)) == dt.datetime(2024, 2, 28, tzinfo=LONDON)
    assert kept_until(dt.date(2031, 2, 28)) == dt.datetime(2024, 3, 1, tzinfo=LONDON)
    assert kept_until(dt.date(2028, 2, 29)) == dt.datetime(2021, 3, 1, tzinfo=LONDON)
    for day in (dt.date(2030, 12, 31) + dt.timedelta(days=n) for n in range(800)):
        last_gone = (kept_until(day) - dt.timedelta(minutes=1)).astimezone(LONDON).date()
        assert last_gone + relativedelta(years=7) <= day  # gone: due
        assert last_gone + dt.timedelta(days=1) + relativedelta(years=7) > day  # kept: not yet


async def test_in_summer_a_record_goes_by_its_london_day_on_sqlite_too(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """Stored in UTC: 22:30 UTC on 1 July is 23:30 in London (gone on 1 July 7 years on), 23:30 UTC
    is already 2 July in London (kept a day longer)."""
    http = await _node(aiohttp_client, database, tmp_path)
    gone = _row(received_copies, dt.datetime(2019, 7, 1, 22, 30, tzinfo=dt.UTC))
    kept = _row(received_copies, dt.datetime(2019, 7, 1, 23, 30, tzinfo=dt.UTC))
    await _insert(http.app[ENGINE], [(received_copies, gone), (received_copies, kept)])
    assert (await _pass(http, dt.date(2026, 7, 1))).records == {"received_copy.purge": 1}
    assert await _present(http.app[ENGINE], received_copies, gone["id"]) is None
    assert await _present(http.app[ENGINE], received_copies, kept["id"]) is not None


async def test_each_record_goes_seven_years_after_it_came_and_not_before(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await _node(aiohttp_client, database, tmp_path)
    engine = http.app[ENGINE]
    old = [(table, _row(table, _LAST_DAY_GONE, **values)) for table, values in _COVERED]
    recent = [(table, _row(table, _FIRST_DAY_KEPT, **values)) for table, values in _COVERED]
    needed = [(table, _row(table, _LAST_DAY_GONE, **values)) for table, values in _LEFT_ALONE]
    await _insert(engine, old + recent + needed)

    done = await _pass(http)

    for table, row in old:
        found = await _present(engine, table, row["id"])
        if table is transfers:  # the row stays, ids only: its sealed lead professional goes
            assert found is not None and (found["sealed"], found["key_id"]) == (None, None)
        else:
            assert found is None, table.name
    for table, row in recent + needed:
        found = await _present(engine, table, row["id"])
        assert found is not None and found["sealed"] == b"sealed", table.name
    expected = {
        "request.purge": 2,
        "received_copy.purge": 1,
        "override.purge": 1,
        "disclosure_approval.purge": 1,
        "notification.purge": 1,
        "outbox.purge": 2,
        "transfer.clear": 3,
    }
    assert done.records == expected
    removals = await _removals(engine)
    assert sorted((action, subject) for action, subject, _ in removals) == sorted(
        (rule.action, row["id"]) for (table, row) in old for rule in RULES if rule.table is table
    )
    assert {actor for _, _, actor in removals} == {RETENTION_ACTOR}
    assert (await http.app[AUDIT].verify()).ok

    again = await _pass(http)  # nothing twice
    assert again.records == {}
    assert len(await _removals(engine)) == len(removals)


async def test_idempotency_keys_go_seven_years_after_their_first_use(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """Keyed by client and key (no id): the audit entry names the client, never the key's text."""
    http = await _node(aiohttp_client, database, tmp_path)
    rows = [
        (idempotency_keys, _row(idempotency_keys, at, client_id="cafx-1", key=f"k-{n}", body={}))
        for n, at in enumerate((_LAST_DAY_GONE, _FIRST_DAY_KEPT))
    ]
    await _insert(http.app[ENGINE], rows)
    assert (await _pass(http)).records == {"idempotency_key.purge": 1}
    async with http.app[ENGINE].connect() as connection:
        left = (await connection.scalars(select(idempotency_keys.c.key))).all()
    assert left == ["k-1"]
    assert [(a, s) for a, s, _ in await _removals(http.app[ENGINE])] == [
        ("idempotency_key.purge", "cafx-1")
    ]


async def test_received_message_ids_go_seven_years_after_they_came(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """Keyed by sender and message id (no id column): the audit entry names both."""
    http = await _node(aiohttp_client, database, tmp_path)
    ids = [str(uuid.uuid4()) for _ in range(2)]
    rows = [
        (inbox, {"sender": MEMBER, "message_id": message_id, "received_at": at})
        for message_id, at in zip(ids, (_LAST_DAY_GONE, _FIRST_DAY_KEPT), strict=True)
    ]
    await _insert(http.app[ENGINE], rows)
    assert (await _pass(http)).records == {"inbox.purge": 1}
    async with http.app[ENGINE].connect() as connection:
        left = (await connection.scalars(select(inbox.c.message_id))).all()
    assert left == [ids[1]]
    assert [(a, s) for a, s, _ in await _removals(http.app[ENGINE])] == [("inbox.purge", ids[0])]
    async with http.app[ENGINE].connect() as connection:
        details = await connection.scalar(
            select(audit_entries.c.details).where(audit_entries.c.action == "inbox.purge")
        )
    assert json.loads(details)["sender"] == MEMBER  # stored as canonical JSON text


async def test_a_transfer_record_already_cleared_is_not_cleared_again(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await _node(aiohttp_client, database, tmp_path)
    cleared = _row(transfers, _LAST_DAY_GONE, state="declined", direction="in")  # sealed None
    cleared["sealed"] = None
    await _insert(http.app[ENGINE], [(transfers, cleared)])
    assert (await _pass(http)).records == {}
    assert await _present(http.app[ENGINE], transfers, cleared["id"]) is not None


async def test_many_records_go_in_batches_each_audited(
    aiohttp_client: AiohttpClient,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_records, "_BATCH", 3)
    http = await _node(aiohttp_client, database, tmp_path)
    copies = [(received_copies, _row(received_copies, _LAST_DAY_GONE)) for _ in range(7)]
    await _insert(http.app[ENGINE], copies)
    assert (await _pass(http)).records == {"received_copy.purge": 7}
    removals = await _removals(http.app[ENGINE])
    assert sorted(subject or "" for _, subject, _ in removals) == sorted(r["id"] for _, r in copies)


async def test_replicas_passing_at_once_remove_and_audit_each_record_once(
    aiohttp_client: AiohttpClient,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On PostgreSQL two replicas, each with its engine and audit log; SQLite has one process."""
    monkeypatch.setattr(_records, "_BATCH", 4)
    http = await _node(aiohttp_client, database, tmp_path)
    rows = [(table, _row(table, _LAST_DAY_GONE, **values)) for table, values in _COVERED * 3]
    await _insert(http.app[ENGINE], rows)
    first = http.app[AUDIT]
    replica: AsyncEngine | None = None
    if database.backend == "sqlite":
        second = first
    else:
        replica = create_engine(database.url, schema=database.schema)
        second = AuditLog(replica, load_signing_key(tmp_path / "signing-key.json"), MEMBER, 100)
    try:
        one, two = await asyncio.gather(
            remove_old_records(first, TODAY, RETENTION_ACTOR),
            remove_old_records(second, TODAY, RETENTION_ACTOR),
        )
    finally:
        if replica is not None:
            await replica.dispose()
    total = {action: one.get(action, 0) + two.get(action, 0) for action in one | two}
    assert sum(total.values()) == len(rows)
    removals = await _removals(http.app[ENGINE])
    assert len(removals) == len({(action, subject) for action, subject, _ in removals}) == len(rows)
    assert (await http.app[AUDIT].verify()).ok
