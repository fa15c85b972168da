"""A node's outbox and the member directory, between real nodes (`node.py`'s `send`, `outbox.py`).

- A message to an authority that is not a member is dead-lettered at once as `unknown_member`, with
  one warning; it used to be retried for 72 h as `internal_error`, an ERROR line at every attempt.
- A suspended member's messages wait as `member_suspended`; its consent withdrawals outlast the
  delivery deadline (the alert once) and are delivered when it is reinstated.
- A member whose body limit is below a batch gets the batch's messages one at a time."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.demo import plan_federation
from gateway.federation.operator import reinstate, suspend
from gateway.keys import ENGINE, MEMBERS, OUTBOX
from gateway.storage._tables import outbox, received_withdrawals

from .nodes import CAMDEN, HACKNEY, ISLINGTON, Node, eventually, running, sees_suspended

OUTSIDER = "E09000001"  # the City of London: not a member of the demo federation


async def _enqueue(node: Node, recipient: str, kind: str, body: dict[str, Any]) -> str:
    assert node.runner is not None
    async with node.runner.app[ENGINE].begin() as connection:
        return await node.runner.app[OUTBOX].enqueue(connection, recipient, kind, body)


async def _row(node: Node, message_id: str) -> Any:
    [found] = await node.engine_rows(select(outbox).where(outbox.c.id == message_id))
    return found


def _withdrawal() -> dict[str, Any]:
    return {"episode_ref": str(uuid.uuid4()), "consent_id": f"c-{uuid.uuid4()}"}


async def test_outsiders_are_dead_lettered_at_once_and_the_suspended_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plans = plan_federation(tmp_path)
    [index] = [i for i, plan in enumerate(plans) if plan.borough.gss == HACKNEY]
    # a deadline that has passed at the first attempt
    settings = plans[index].settings.model_copy(update={"outbox_delivery_deadline_hours": 1e-6})
    plans[index] = dataclasses.replace(plans[index], settings=settings)
    caplog.set_level(logging.INFO, logger="cafx")
    async with running(plans) as nodes:
        hackney, camden = nodes[HACKNEY], nodes[CAMDEN]
        suspend(tmp_path / "federation", CAMDEN)
        plan_federation(tmp_path)  # re-sign the metadata: Camden suspended
        await sees_suspended(hackney, CAMDEN)

        outsider = await _enqueue(hackney, OUTSIDER, "tac_notification", {"n": 1})
        notice = await _enqueue(hackney, CAMDEN, "tac_notification", {"n": 2})
        withdrawal = _withdrawal()
        withdrawn = await _enqueue(hackney, CAMDEN, "consent_withdrawn", withdrawal)

        async def settled() -> bool:
            rows = [await _row(hackney, m) for m in (outsider, notice, withdrawn)]
            return [r.state for r in rows] == ["dead", "dead", "pending"] and rows[2].attempts > 1

        await eventually(settled, timeout=30)
        gone, told, kept = [await _row(hackney, m) for m in (outsider, notice, withdrawn)]
        assert (gone.attempts, gone.last_error) == (1, "unknown_member")
        assert told.last_error == "member_suspended"  # other kinds keep the deadline
        assert kept.last_error == "member_suspended"

        records = [r for r in caplog.records if r.name.startswith("cafx")]
        about = [
            (r.levelname, r.getMessage())
            for r in records
            if r.__dict__.get("message_id") == outsider
        ]
        assert about == [("WARNING", "message dead-lettered")]
        assert not [
            r for r in records if r.getMessage() in ("sending failed", "background pass failed")
        ]
        overdue = [r for r in records if r.getMessage() == "message overdue"]
        assert [(r.levelname, r.__dict__["message_id"]) for r in overdue] == [("ERROR", withdrawn)]

        reinstate(tmp_path / "federation", CAMDEN)
        plan_federation(tmp_path)
        assert hackney.runner is not None
        members = hackney.runner.app[MEMBERS]

        async def active() -> bool:
            found = members().member(CAMDEN)
            return found is not None and found.status == "active"

        await eventually(active)

        async def delivered() -> bool:
            return bool((await _row(hackney, withdrawn)).state == "delivered")

        await eventually(delivered, timeout=60)  # its back-off is seconds long at most here
        arrived = await camden.engine_rows(select(received_withdrawals))
        assert [(r.holder, r.consent_id) for r in arrived] == [(HACKNEY, withdrawal["consent_id"])]


async def test_a_member_with_a_small_body_limit_gets_the_messages_one_at_a_time(
    tmp_path: Path,
) -> None:
    plans = plan_federation(tmp_path)
    [index] = [i for i, plan in enumerate(plans) if plan.borough.gss == ISLINGTON]
    settings = plans[index].settings.model_copy(update={"max_body_bytes": 2048})
    plans[index] = dataclasses.replace(plans[index], settings=settings)
    async with running(plans) as nodes:
        hackney, islington = nodes[HACKNEY], nodes[ISLINGTON]
        assert hackney.runner is not None
        bodies = [
            _withdrawal() for _ in range(30)
        ]  # about 190 bytes each on the wire: 3.8 KiB for 20
        async with hackney.runner.app[ENGINE].begin() as connection:
            ids = [
                await hackney.runner.app[OUTBOX].enqueue(
                    connection, ISLINGTON, "consent_withdrawn", body
                )
                for body in bodies
            ]

        async def delivered() -> bool:
            rows = [await _row(hackney, m) for m in ids]
            return all(r.state == "delivered" for r in rows)

        await eventually(delivered, timeout=30)
        arrived = await islington.engine_rows(select(received_withdrawals))
        assert sorted(r.consent_id for r in arrived) == sorted(b["consent_id"] for b in bodies)
