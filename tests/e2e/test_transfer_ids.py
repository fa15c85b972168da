"""Ids a peer chooses for a transfer are stored, listed and put in console addresses: a message
whose offer id or episode reference is not a UUID in its usual form is refused (between real
nodes). Before, `x/../../../sign-out?` was stored, and its Decline button signed the contact out."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.demo import plan_federation
from gateway.keys import ENGINE, OUTBOX
from gateway.storage._tables import outbox, transfers

from .nodes import CAMDEN, HACKNEY, Node, eventually, running


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    async with running(plan_federation(tmp_path)) as nodes:
        yield nodes


@pytest.mark.parametrize(
    ("offer_id", "episode_ref"),
    [
        ("x/../../../sign-out?", str(uuid.uuid4())),
        (str(uuid.uuid4()).upper(), str(uuid.uuid4())),
        (str(uuid.uuid4()), "../../audit?"),
    ],
    ids=["a path in the offer id", "an offer id in capitals", "a path in the episode ref"],
)
async def test_an_offer_with_ids_not_in_their_usual_form_is_refused(
    federation: dict[str, Node], offer_id: str, episode_ref: str
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    assert camden.runner is not None
    async with camden.runner.app[ENGINE].begin() as connection:
        sent = await camden.runner.app[OUTBOX].enqueue(
            connection,
            HACKNEY,
            "transfer_offer",
            {
                "offer_id": offer_id,
                "episode_ref": episode_ref,
                "state": "open",
                "local_ref": None,
                "custody": [],
            },
        )

    async def refused() -> bool:
        rows = await camden.engine_rows(select(outbox).where(outbox.c.id == sent))
        return bool(rows[0].last_error == "schema_violation")

    await eventually(refused)
    assert await hackney.engine_rows(select(transfers)) == []
