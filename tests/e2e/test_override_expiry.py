"""A request whose public-interest override reaches its time limit while it still awaits a lead
contact leaves the queue: the housekeeping pass fails it as `override_expired` (once, audited),
and nothing is sent; requests without an override, or whose limit is later, stay."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from gateway.keys import REQUESTS
from gateway.storage._tables import audit_entries, register

from .nodes import CAMDEN, HACKNEY, Node, ask, disclosure, seed

_JUSTIFICATION = "Safeguarding concern reported tonight; consent cannot be sought safely."


def _with_override(episode: dict[str, Any], expires: dt.datetime) -> dict[str, Any]:
    override = {"justification": _JUSTIFICATION, "expires_at": expires.isoformat()}
    return disclosure(episode, override=override)


async def test_a_request_whose_override_lapsed_while_waiting_fails_once(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    limit = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    unverified = await ask(camden, _with_override(episode, limit), approve=False)
    half = await ask(camden, _with_override(episode, limit))  # one of its two approvals
    later = await ask(camden, _with_override(episode, limit + dt.timedelta(days=3)), False)
    plain = await ask(camden, disclosure(episode), approve=False)
    assert (unverified["state"], half["state"]) == (
        "awaiting_verification",
        "awaiting_second_approval",
    )
    assert camden.runner is not None
    requests = camden.runner.app[REQUESTS]

    assert await requests.fail_expired_overrides() == []  # not yet
    lapsed = [unverified["request_id"], half["request_id"]]
    past = limit + dt.timedelta(seconds=1)
    assert sorted(await requests.fail_expired_overrides(past)) == sorted(lapsed)
    assert await requests.fail_expired_overrides(past) == []  # failed once

    for request_id in lapsed:
        status, failed = await camden.call("GET", f"/requests/{request_id}")
        assert (failed["state"], failed["error"]) == ("failed", "override_expired"), failed
    status, queue = await camden.call("GET", "/requests")
    assert status == 200
    assert sorted(r["request_id"] for r in queue["requests"]) == sorted(
        [later["request_id"], plain["request_id"]]
    )
    audited = await camden.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "request.expire")
    )
    assert sorted(a.subject for a in audited) == sorted(lapsed)
    assert {(a.outcome, a.reason, a.actor) for a in audited} == {
        ("failed", "override_expired", "node")
    }
    # Nothing was sent: the holder disclosed nothing and the failed request takes no approval.
    assert await hackney.engine_rows(select(register)) == []
    status, refused = await camden.call(
        "POST",
        f"/requests/{half['request_id']}/decision",
        json={"decision": "approve", "lead_contact_id": camden.plan.borough.lead_contacts()[1]},
    )
    assert (status, refused["error"]) == (409, "conflict"), refused
