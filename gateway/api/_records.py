"""Who saw what: the audit chain's verification and the sharing register (DESIGN 3.8)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from sqlalchemy import Row, select

from ..audit import Outcome, naming
from ..errors import BadRequest, GatewayError
from ..federation.subject_access import (
    CHILD_KEYS,
    IDENTIFYING_KEYS,
    child_query,
    episodes_of_child,
)
from ..keys import AUDIT, EPISODES
from ..storage._tables import register
from ._auth import needs
from ._common import draft, safe_code

__all__ = ["get_register", "verify_audit"]


@needs("audit:read")
async def verify_audit(request: web.Request) -> web.Response:
    result = await request.config_dict[AUDIT].verify()
    return web.json_response(result.as_dict())


def _entry(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "episode_id": row.episode_id,
        "direction": row.direction,
        "counterpart": row.counterpart,
        "requested_by": row.requested_by,
        "approved_by": row.approved_by,
        "second_approved_by": row.second_approved_by,
        "holder_approved_by": row.holder_approved_by,
        "sections": row.sections,
        "basis": row.basis,
        "override": row.override,
        "disclosed_at": row.disclosed_at.isoformat(),
        "withdrawn_at": row.withdrawn_at.isoformat() if row.withdrawn_at else None,
        "returned_at": row.returned_at.isoformat() if row.returned_at else None,
    }


@needs("register:read")
async def get_register(request: web.Request) -> web.Response:
    """DESIGN 3.8: one episode's disclosures, both sides (`?episode=`); one child's, found by the
    child's match keys as `GET /episodes` finds it (subject access: the episodes held here and those
    received from other members); or what one of this borough's practitioners received
    (`?practitioner=`, the id this borough gave them: another borough's ids are its own, so the rows
    of what we sent are not read by them); oldest first."""
    episode, practitioner = request.query.get("episode"), request.query.get("practitioner")
    named = tuple(k for k in CHILD_KEYS if k in request.query)  # keys, never values
    if (episode is not None) + (practitioner is not None) + bool(named) != 1:
        raise BadRequest(
            "name one episode (?episode=<id>), one child (its match keys, as for /episodes) or"
            " one practitioner (?practitioner=<id>)"
        )
    if named:
        return await _child_register(request, named)
    if episode is not None:
        try:
            episode = str(uuid.UUID(episode))
        except ValueError:
            raise BadRequest("?episode= is an episode id") from None
        which = register.c.episode_id == episode
    else:
        assert practitioner is not None  # noqa: S101 - one of the three, checked above
        if not 1 <= len(practitioner) <= 200:
            raise BadRequest("?practitioner= is a practitioner id (1 to 200 characters)")
        which = (register.c.requested_by == practitioner) & (register.c.direction == "received")
    audit = request.config_dict[AUDIT]
    async with audit.transaction() as connection:
        rows = await connection.execute(
            select(register).where(which).order_by(register.c.disclosed_at)
        )
        entries = [_entry(row) for row in rows]
        who = None if practitioner is None else safe_code(practitioner)
        await audit.append(
            connection,
            draft(request, "register.read", episode, results=len(entries), practitioner=who),
        )
    return web.json_response(
        {"episode_id": episode, "practitioner": practitioner, "entries": entries}
    )


async def _child_register(request: web.Request, named: tuple[str, ...]) -> web.Response:
    """Every episode of the child held here or received, each with its match (as a search gives
    it: a possible match may be another child) and its own register rows. Read outside the audit
    lock, then recorded naming every episode shown; a refused or failed read is recorded too."""
    audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
    keys = tuple(k for k in named if k in IDENTIFYING_KEYS)  # names, never values
    try:
        query = child_query(request.query)
        async with audit.engine.connect() as connection:
            found = await episodes_of_child(connection, query, store)
            rows = await connection.execute(
                select(register)
                .where(register.c.episode_id.in_([f.episode_id for f in found]))
                .order_by(register.c.disclosed_at, register.c.id)
            )
            entries: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                entries.setdefault(row.episode_id, []).append(_entry(row))
    except Exception as error:  # refused (a GatewayError) or failed: recorded either way
        outcome, reason, rule = _why(error)
        await audit.record(
            draft(
                request,
                "register.read",
                None,
                outcome=outcome,
                reason=reason,
                keys=named,
                rule=rule,
            )
        )
        raise
    read = draft(
        request,
        "register.read",
        None,
        keys=keys,
        results=sum(len(e) for e in entries.values()),
    )
    async with audit.transaction() as connection:
        for entry in naming(read, {"episodes": [f.episode_id for f in found]}):
            await audit.append(connection, entry)
    matches = [
        {
            "episode_id": f.episode_id,
            "confidence": round(f.confidence, 3),
            "basis": f.basis,
            "held": f.held,
            "entries": entries.get(f.episode_id, []),
        }
        for f in found
    ]
    return web.json_response({"matches": matches})


def _why(error: Exception) -> tuple[Outcome, str, str]:
    """How a read that did not succeed ended: its outcome, reason and rule (a refusal's code and
    first problem's rule; anything else `internal_error`)."""
    if not isinstance(error, GatewayError):
        return Outcome.FAILED, "internal_error", "internal_error"
    rule = error.problems[0].rule if error.problems else error.wire_code
    return (Outcome.FAILED if error.status >= 500 else Outcome.REFUSED), error.wire_code, rule
