"""The federation page: members from the signed metadata (status, endpoint, last exchange), the
metadata's version and expiry, transfer offers not yet committed (escalated ones flagged; an
unanswered one withdrawn by this borough or declined by it, with a reason),
messages kept until delivered that are past their deadline (kind, recipient, last error, age; never a
body) with a give-up button, and dead-lettered outbox messages with a retry button; and the audit
page: the chain checked since its latest signed checkpoint (or, on demand, verified whole) and the
latest signed checkpoints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..audit import Outcome
from ..errors import GatewayError, NotFound, SchemaViolation
from ..federation.transfer import CLOSING, OPEN_STATES
from ..keys import AUDIT, MEMBERS, OUTBOX, SETTINGS, TRANSFERS
from ..storage import aware_utc
from ..storage._tables import inbox, register
from ._chain import check_chain
from ._web import CONSOLE_PATH, LEAD, audit, draft, render, uuid_of

__all__ = ["audit_page", "close_offer", "federation_page", "give_up_message", "retry_message"]

# Why an offer is closed unmoved, as the console offers it: codes (the other member lists them).
CLOSING_REASONS = {
    "not_resident": "The child does not live here",
    "family_stayed": "The family did not move",
    "wrong_authority": "Offered to the wrong authority",
    "unspecified": "Another reason (say so to the other borough)",
}


async def _last_exchange(request: web.Request, members: list[str]) -> dict[str, dt.datetime]:
    """The latest message received from, or disclosure with, each member: in one statement, an
    index look-up per member and table (a GROUP BY would read every message and disclosure ever)."""
    latest = [
        select(func.max(moment)).where(column == member).scalar_subquery()
        for member in members
        for column, moment in (
            (inbox.c.sender, inbox.c.received_at),
            (register.c.counterpart, register.c.disclosed_at),
        )
    ]
    if not latest:
        return {}
    async with request.config_dict[AUDIT].engine.connect() as connection:
        row = (await connection.execute(select(*latest))).one()
    found: dict[str, dt.datetime] = {}
    for member, seen in zip(members, zip(row[::2], row[1::2], strict=True), strict=True):
        moments = [aware_utc(moment) for moment in seen if moment is not None]
        if moments:
            found[member] = max(moments)
    return found


async def _waiting_offers(request: web.Request) -> list[dict[str, Any]]:
    """Transfer offers made to or by this borough not yet committed, oldest first."""
    workflow = request.config_dict[TRANSFERS]
    async with request.config_dict[AUDIT].engine.connect() as connection:
        offers = [
            {
                **offer,
                "direction": direction,
                "offered_at": dt.datetime.fromisoformat(offer["offered_at"]),
            }
            for direction in ("in", "out")
            for offer in await workflow.listed(connection, direction, states=OPEN_STATES)
        ]
    return sorted(offers, key=lambda o: o["offered_at"])


async def federation_page(request: web.Request) -> web.Response:
    directory = request.config_dict[MEMBERS]()
    metadata = directory.metadata
    latest = await _last_exchange(request, [m.id for m in metadata.members])
    now = dt.datetime.now(dt.UTC)
    members = [
        {
            "id": m.id,
            "name": m.name,
            "status": m.status,
            "endpoint": m.endpoint,
            "lead_contacts": [c.name for c in m.lead_contacts],
            "last_exchange": latest.get(m.id),
            "me": m.id == request.config_dict[SETTINGS].member_id,
        }
        for m in sorted(metadata.members, key=lambda m: m.name)
    ]
    dead = await request.config_dict[OUTBOX].dead()
    overdue = [
        {**message, "age": now - message["created_at"]}
        for message in await request.config_dict[OUTBOX].overdue()
    ]
    offers = await _waiting_offers(request)
    counts = await request.config_dict[OUTBOX].counts()
    await audit(
        request, "console.view", None, page="federation", dead=len(dead), overdue=len(overdue)
    )
    return render(
        request,
        "federation.html",
        {
            "title": "Federation",
            "metadata": metadata,
            "expires_in": metadata.expires_at - now,
            "expired": metadata.expires_at <= now,
            "members": members,
            "dead": dead,
            "overdue": overdue,
            "offers": offers,
            "counts": counts,
            "reasons": CLOSING_REASONS,
            "retried": request.query.get("retried"),
            "given_up": request.query.get("given_up"),
            "closed": request.query.get("closed"),
        },
    )


async def retry_message(request: web.Request) -> web.Response:
    """Put a dead-lettered message back in the queue."""
    outbox = request.config_dict[OUTBOX]
    return await _on_message(
        request, "outbox.retry", outbox.retry_dead, "retried", "no dead-lettered message"
    )


async def give_up_message(request: web.Request) -> web.Response:
    """Dead-letter a message kept until delivered that is past its deadline, once the operator has
    dealt with it otherwise (told the other borough by other means): it is no longer retried. It
    can still be retried from the dead letters."""
    outbox = request.config_dict[OUTBOX]
    return await _on_message(
        request,
        "outbox.give_up",
        outbox.give_up,
        "given_up",
        "no pending message past its deadline",
    )


async def _on_message(
    request: web.Request,
    action: str,
    change: Callable[[str, AsyncConnection], Awaitable[bool]],
    done: str,
    missing: str,
) -> web.Response:
    """`change` a message and write its audit entry in one transaction (or neither); back to the
    federation page saying it was `done`, or 404 (audited) when no such message could be."""
    message_id = uuid_of(request, "message_id")
    log = request.config_dict[AUDIT]
    async with log.transaction() as connection:
        changed = await change(message_id, connection)
        if changed:
            await log.append(connection, draft(request, action, message_id))
    if not changed:
        await audit(request, action, message_id, Outcome.REFUSED, reason="not_found")
        raise NotFound(f"{missing} with that id")
    raise web.HTTPSeeOther(f"{CONSOLE_PATH}/federation?{done}={message_id}")


async def close_offer(request: web.Request) -> web.Response:
    """Withdraw an offer this borough made, or decline one made to it, while it is unanswered; or
    release one this borough accepted whose episode is past due."""
    offer_id = uuid_of(request, "offer_id")
    form = await request.post()
    direction, reason = str(form.get("direction")), form.get("reason")
    action = CLOSING[direction][0] if direction in CLOSING else None
    workflow, log = request.config_dict[TRANSFERS], request.config_dict[AUDIT]
    try:
        if action is None or not isinstance(reason, str) or reason not in CLOSING_REASONS:
            raise SchemaViolation("choose a reason for closing the offer")
        async with log.transaction() as connection:
            closed = await workflow.close(connection, offer_id, direction, reason)
            await log.append(
                connection,
                draft(
                    request,
                    f"transfer.{closed.action}",
                    closed.episode_id,
                    reason=reason,
                    offer=offer_id,
                    via=f"console:{request[LEAD].id}",
                ),
            )
    except GatewayError as error:
        await audit(
            request,
            error.refused_action or f"transfer.{action or 'close'}",
            offer_id,
            Outcome.REFUSED,
            reason=error.wire_code,
        )
        raise
    raise web.HTTPSeeOther(f"{CONSOLE_PATH}/federation?closed={offer_id}")


async def audit_page(request: web.Request) -> web.Response:
    """Checked from the latest signed checkpoint; the whole chain on demand (a POST: it is costly)."""
    whole = request.method == "POST"
    log = request.config_dict[AUDIT]
    check = await check_chain(log, whole=whole)
    result = check.result
    checkpoints = await log.latest_checkpoints(10)
    await audit(
        request,
        "console.view",
        None,
        page="audit",
        ok=result.ok,
        checked=result.checked,
        whole=check.since is None,
    )
    return render(
        request,
        "audit.html",
        {
            "title": "Audit",
            "result": result.as_dict(),
            "since": check.since,
            "checkpoints": checkpoints,
        },
    )
