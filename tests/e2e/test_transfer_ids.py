"""What a peer sends that is not what a node sends, between real nodes. Ids a peer chooses for a
transfer are stored, listed and put in console addresses: a message whose offer id or episode
reference is not a UUID in its usual form is refused. Before, `x/../../../sign-out?` was stored,
and its Decline button signed the contact out. A batch refused whole is audited."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert, select

from gateway.keys import ENGINE, OUTBOX, PEERS
from gateway.storage._tables import audit_entries, outbox, transfers

from .nodes import CAMDEN, HACKNEY, Node, eventually


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


async def test_an_offer_stored_before_ids_were_checked_is_not_listed(
    federation: dict[str, Node],
) -> None:
    hackney = federation[HACKNEY]
    assert hackney.runner is not None
    now = dt.datetime.now(dt.UTC)
    async with hackney.runner.app[ENGINE].begin() as connection:
        for offer_id in ("x/../../../sign-out?", str(uuid.uuid4())):
            await connection.execute(
                insert(transfers).values(
                    id=offer_id,
                    direction="in",
                    episode_id=str(uuid.uuid4()),
                    counterpart=CAMDEN,
                    state="offered",
                    created_at=now,
                    updated_at=now,
                )
            )
    status, listed = await hackney.call("GET", "/transfers?direction=in")
    assert status == 200
    assert [len(t["offer_id"]) for t in listed["transfers"]] == [36]


@pytest.mark.parametrize(
    "message",
    [
        {"kind": "consent_withdrawn", "body": {}},
        {"id": 7, "kind": "consent_withdrawn", "body": {}},
        "m-AlexTestparent",  # free text
    ],
    ids=["no id", "an id not a string", "not an object"],
)
async def test_a_batch_refused_whole_is_recorded(
    federation: dict[str, Node], message: object
) -> None:
    """A batch that is not one (an entry that cannot be acknowledged, having no string id) is
    refused 422, and the refusal is audited like every other federation refusal, with no subject.
    A message of an unknown kind or with a malformed id is refused alone:
    tests/e2e/test_receiver_fixes_messages.py."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    assert camden.runner is not None
    reply = await camden.runner.app[PEERS].post(HACKNEY, "/messages", {"messages": [message]})
    assert reply.status == 422
    (audited,) = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "federation.message")
    )
    assert (audited.actor, audited.outcome, audited.reason, audited.subject) == (
        f"member:{CAMDEN}",
        "refused",
        "schema_violation",
        None,
    )
