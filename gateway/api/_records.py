"""Who saw what: the audit chain's verification and the sharing register (DESIGN 3.8)."""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy import select

from ..errors import BadRequest
from ..keys import AUDIT
from ..storage._tables import register
from ._auth import needs
from ._common import draft

__all__ = ["get_register", "verify_audit"]


@needs("audit:read")
async def verify_audit(request: web.Request) -> web.Response:
    result = await request.config_dict[AUDIT].verify()
    return web.json_response(result.as_dict())


@needs("register:read")
async def get_register(request: web.Request) -> web.Response:
    try:
        episode_id = str(uuid.UUID(request.query["episode"]))
    except (KeyError, ValueError):
        raise BadRequest("name the episode: ?episode=<episode id>") from None
    audit = request.config_dict[AUDIT]
    async with audit.transaction() as connection:
        rows = await connection.execute(
            select(register)
            .where(register.c.episode_id == episode_id)
            .order_by(register.c.disclosed_at)
        )
        entries = [
            {
                "id": row.id,
                "direction": row.direction,
                "counterpart": row.counterpart,
                "requested_by": row.requested_by,
                "approved_by": row.approved_by,
                "sections": row.sections,
                "basis": row.basis,
                "override": row.override,
                "disclosed_at": row.disclosed_at.isoformat(),
                "withdrawn_at": row.withdrawn_at.isoformat() if row.withdrawn_at else None,
            }
            for row in rows
        ]
        await audit.append(
            connection, draft(request, "register.read", episode_id, results=len(entries))
        )
    return web.json_response({"episode_id": episode_id, "entries": entries})
