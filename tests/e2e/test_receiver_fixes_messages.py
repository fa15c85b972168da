"""The receiver of `/federation/v1/messages`, between real nodes on loopback (signed requests, mutual
TLS): a message this release cannot read is refused alone and the rest of its batch is applied; a
`consent_withdrawn` body is checked before anything is stored; an applied message is audited in its
own transaction, with what it changed. Every test runs on SQLite and on PostgreSQL (one schema per
node)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.keys import PEERS
from gateway.storage._tables import audit_entries, inbox, notifications, received_withdrawals

from .nodes import HACKNEY, ISLINGTON, Node, federation_on, seed


@pytest.fixture(params=["sqlite", "postgresql"])
async def federation(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, Node]]:
    async with federation_on(request.param, tmp_path) as nodes:
        yield nodes


async def _send(sender: Node, recipient: str, messages: list[dict[str, Any]]) -> tuple[int, Any]:
    """A batch as `sender`'s node signs it, whatever is in it (its outbox writes only good ones)."""
    assert sender.runner is not None
    reply = await sender.runner.app[PEERS].post(recipient, "/messages", {"messages": messages})
    return reply.status, reply.body


def _notification(episode_ref: str) -> dict[str, Any]:
    return {
        "episode_ref": episode_ref,
        "holder": HACKNEY,
        "practitioner": {
            "name": "A Youth Worker",
            "organisation": "Islington Youth Service",
            "agency_type": "early_help",
            "authority": ISLINGTON,
        },
    }


async def _messages_audited(node: Node) -> list[Any]:
    return await node.engine_rows(
        select(audit_entries)
        .where(audit_entries.c.action == "federation.message")
        .order_by(audit_entries.c.sequence)
    )


async def test_a_message_of_an_unknown_kind_or_id_is_refused_alone(
    federation: dict[str, Node],
) -> None:
    """A member on a later release sends a kind this one does not know, another writes its ids in
    upper case: before, the whole batch was refused 422, and resent (and refused) until every
    message to this member was dead-lettered."""
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_ref = str(uuid.uuid4())
    good, unknown, upper = (str(uuid.uuid4()) for _ in range(3))
    status, answer = await _send(
        hackney,
        ISLINGTON,
        [
            {"id": unknown, "kind": "care plan update!", "body": {}},
            {"id": upper.upper(), "kind": "tac_notification", "body": _notification(episode_ref)},
            {"id": "not an id", "kind": "tac_notification", "body": []},
            {"id": good, "kind": "tac_notification", "body": _notification(episode_ref)},
        ],
    )
    assert status == 200, answer
    assert answer["acknowledgements"] == [
        {"id": unknown, "status": "unsupported_format"},
        {"id": upper.upper(), "status": "schema_violation"},
        {"id": "not an id", "status": "schema_violation"},
        {"id": good, "status": "applied"},
    ]
    (kept,) = await islington.engine_rows(select(notifications))
    assert kept.message_id == good
    assert [r.message_id for r in await islington.engine_rows(select(inbox))] == [good]

    audited = await _messages_audited(islington)  # the one applied first, in its transaction
    assert (audited[0].subject, audited[0].outcome) == (good, "success")
    assert [(a.subject, a.outcome, a.reason, json.loads(a.details)) for a in audited[1:]] == [
        (unknown, "failed", "unsupported_format", {"status": "unsupported_format"}),
        (
            None,
            "failed",
            "schema_violation",
            {"kind": "tac_notification", "status": "schema_violation"},
        ),
        (
            None,
            "failed",
            "schema_violation",
            {"kind": "tac_notification", "status": "schema_violation"},
        ),
    ]  # a peer's own words (a kind unknown here, an id not ours) are never put in the audit log


async def test_a_withdrawal_that_is_not_as_a_holder_writes_it_is_refused(
    federation: dict[str, Node],
) -> None:
    """Before, a long `episode_ref` was stored on SQLite and failed (`internal_error`, retried to a
    dead letter) on PostgreSQL; a missing field was a KeyError."""
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_ref = str(uuid.uuid4())
    bodies = {
        "long-ref": {"episode_ref": episode_ref + "-and-more", "consent_id": "C1"},
        "upper-ref": {"episode_ref": episode_ref.upper(), "consent_id": "C1"},
        "control": {"episode_ref": episode_ref, "consent_id": "C1\x00"},
        "too-long": {"episode_ref": episode_ref, "consent_id": "C" * 513},
        "missing": {"episode_ref": episode_ref},
        "more": {"episode_ref": episode_ref, "consent_id": "C1", "other": 1},
        "good": {"episode_ref": episode_ref, "consent_id": "CAF/2026, 7"},
        # The national model's rule: no control characters. A no-break space is no control.
        "spaced": {"episode_ref": episode_ref, "consent_id": "CAF\u00a02026"},
    }
    ids = {name: str(uuid.uuid4()) for name in bodies}
    status, answer = await _send(
        hackney,
        ISLINGTON,
        [{"id": ids[n], "kind": "consent_withdrawn", "body": b} for n, b in bodies.items()],
    )
    assert status == 200, answer
    statuses = {a["id"]: a["status"] for a in answer["acknowledgements"]}
    assert {n: statuses[i] for n, i in ids.items()} == {
        **{n: "schema_violation" for n in bodies if n not in ("good", "spaced")},
        "good": "applied",
        "spaced": "applied",
    }
    kept = await islington.engine_rows(select(received_withdrawals))
    assert sorted((k.episode_ref, k.consent_id) for k in kept) == [
        (episode_ref, "CAF/2026, 7"),
        (episode_ref, "CAF\u00a02026"),
    ]


async def test_an_applied_message_is_audited_with_what_it_changed(
    federation: dict[str, Node],
) -> None:
    """Two offers of an episode Islington holds, in one batch: each is declined at once (audited
    `transfer.decline`), and each message's entry follows its own changes, in its transaction.
    Before, both were recorded after the batch, once committed: a node stopping in between left
    an applied message unrecorded, and its redelivery was recorded only as a duplicate."""
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_ref = (await seed(islington))["episode_id"]
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    offers = [
        {
            "id": message_id,
            "kind": "transfer_offer",
            "body": {"offer_id": str(uuid.uuid4()), "episode_ref": episode_ref},
        }
        for message_id in (first, second)
    ]
    status, answer = await _send(hackney, ISLINGTON, offers)
    assert status == 200 and [a["status"] for a in answer["acknowledgements"]] == [
        "applied",
        "applied",
    ], answer
    entries = await islington.engine_rows(
        select(audit_entries)
        .where(audit_entries.c.action.in_(["transfer.decline", "federation.message"]))
        .order_by(audit_entries.c.sequence)
    )
    assert [(e.action, e.subject) for e in entries] == [
        ("transfer.decline", episode_ref),
        ("federation.message", first),
        ("transfer.decline", episode_ref),
        ("federation.message", second),
    ]
    assert json.loads(entries[1].details) == {"kind": "transfer_offer", "status": "applied"}

    status, again = await _send(hackney, ISLINGTON, offers[:1])  # sent again: recorded after
    assert status == 200 and again["acknowledgements"] == [{"id": first, "status": "duplicate"}]
    last = (await _messages_audited(islington))[-1]
    assert (last.subject, last.outcome, json.loads(last.details)["status"]) == (
        first,
        "success",
        "duplicate",
    )


async def test_a_borough_system_polls_on_from_the_last_one_listed(
    federation: dict[str, Node],
) -> None:
    """`since_id` with `since`: the page after the last one listed, none skipped that shares its
    moment (`tests/gateway/test_receiver_fixes_notifications.py` shows the page boundary)."""
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_ref = str(uuid.uuid4())
    status, _ = await _send(
        hackney,
        ISLINGTON,
        [
            {
                "id": str(uuid.uuid4()),
                "kind": "tac_notification",
                "body": _notification(episode_ref),
            }
            for _ in range(2)
        ],
    )
    assert status == 200
    status, page = await islington.call("GET", "/notifications", params={"limit": "1"})
    assert status == 200, page
    (first,) = page["notifications"]
    cursor = {"since": first["received_at"], "since_id": first["id"]}
    status, rest = await islington.call("GET", "/notifications", params=cursor)
    assert status == 200 and len(rest["notifications"]) == 1
    assert rest["notifications"][0]["id"] != first["id"]
    for params in ({"since_id": first["id"]}, {**cursor, "since_id": "not-an-id"}):
        status, refused = await islington.call("GET", "/notifications", params=params)
        assert (status, refused["error"]) == (400, "bad_request")
