"""Who saw what: the audit chain's verification and the sharing register (DESIGN 3.8)."""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy import select

from ..errors import BadRequest
from ..keys import AUDIT
from ..storage._tables import register
from ._auth import needs
from ._common import draft, safe_code

__all__ = ["get_register", "verify_audit"]


@needs("audit:read")
async def verify_audit(request: web.Request) -> web.Response:
    result = await request.config_dict[AUDIT].verify()
    return web.json_response(result.as_dict())


@needs("register:read")
async def get_register(request: web.Request) -> web.Response:
    """DESIGN 3.8: one child's disclosures, both sides (`?episode=`, subject access), or what one
    of this borough's practitioners received (`?practitioner=`, the id this borough gave them:
    another borough's ids are its own, so the rows of what we sent are not read by them), oldest
    first."""
    episode, practitioner = request.query.get("episode"), request.query.get("practitioner")
    if (episode is None) == (practitioner is None):
        raise BadRequest(
            "name one episode (?episode=<id>) or one practitioner (?practitioner=<id>)"
        )
    if episode is not None:
        try:
            episode = str(uuid.UUID(episode))
        except ValueError:
            raise BadRequest("?episode= is an episode id") from None
        which = register.c.episode_id == episode
    else:
        assert practitioner is not None  # noqa: S101 - one of the two, checked above
        if not 1 <= len(practitioner) <= 200:
            raise BadRequest("?practitioner= is a practitioner id (1 to 200 characters)")
        which = (register.c.requested_by == practitioner) & (register.c.direction == "received")
    audit = request.config_dict[AUDIT]
    async with audit.transaction() as connection:
        rows = await connection.execute(
            select(register).where(which).order_by(register.c.disclosed_at)
        )
        entries = [
            {
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
            for row in rows
        ]
        who = None if practitioner is None else safe_code(practitioner)
        await audit.append(
            connection,
            draft(request, "register.read", episode, results=len(entries), practitioner=who),
        )
    return web.json_response(
        {"episode_id": episode, "practitioner": practitioner, "entries": entries}
    )
