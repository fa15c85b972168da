"""Notifications from holders: kept sealed, exactly as told; a body that is not a holder's, or that
claims another holder than its sender, is refused and nothing is kept."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from gateway.errors import SchemaViolation
from gateway.federation.notifications import Notifications
from gateway.federation.outbox import Message
from gateway.protection import KeyRing
from gateway.storage import create_engine, upgrade
from gateway.storage._tables import notifications

from ..conftest import Database

HACKNEY, ISLINGTON = "E09000012", "E09000019"
EPISODE = "6f1c2b9e-0d5c-4a53-9a59-0c3f1f7f2a10"
WORKER = {"name": "A Youth Worker", "organisation": "Youth Service", "agency_type": "early_help"}


def _told(**changes: Any) -> dict[str, Any]:
    return {"episode_ref": EPISODE, "holder": HACKNEY, "practitioner": WORKER, **changes}


@pytest.mark.parametrize(
    "body",
    [
        _told(holder=ISLINGTON),  # names another holder than the member that sent it
        _told(practitioner={"name": "No agency"}),
        _told(episode_ref=""),
        {"episode_ref": EPISODE},
    ],
    ids=["another-holder", "bad-practitioner", "empty-ref", "missing-fields"],
)
async def test_a_bad_notification_is_refused_and_nothing_kept(
    database: Database, body: dict[str, Any]
) -> None:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        kept = Notifications(KeyRing.generate())
        with pytest.raises(SchemaViolation) as refused:
            async with engine.begin() as connection:
                await kept.receive(connection, HACKNEY, Message("m1", "tac_notification", body))
        assert "Youth" not in str(refused.value) and "No agency" not in str(refused.value)
        async with engine.connect() as connection:
            assert (await connection.execute(select(notifications))).all() == []
    finally:
        await engine.dispose()


async def test_a_notification_is_sealed_and_listed_as_told(database: Database) -> None:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        kept = Notifications(KeyRing.generate())
        async with engine.begin() as connection:
            message = Message("m1", "lead_professional_update", _told())
            await kept.receive(connection, HACKNEY, message)
        async with engine.connect() as connection:
            (row,) = (await connection.execute(select(notifications))).all()
            assert b"Youth" not in row.sealed  # the practitioner is sealed at rest
            (listed,) = await kept.listed(connection, episode_ref=EPISODE)
            assert await kept.listed(connection, episode_ref=EPISODE.replace("6f", "7f")) == []
        assert listed["kind"] == "lead_professional_update" and listed["from"] == HACKNEY
        assert {k: listed["practitioner"][k] for k in WORKER} == WORKER
    finally:
        await engine.dispose()
