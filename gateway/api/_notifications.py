"""What other members told this one about episodes its practitioners take part in (DESIGN 3.6)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import NamedTuple

from aiohttp import web

from ..errors import BadRequest, NotFound
from ..keys import AUDIT, NOTIFICATIONS
from ._auth import needs
from ._common import draft

__all__ = ["list_notifications"]

MAX_LIMIT = 500


class _Query(NamedTuple):
    episode_ref: str | None
    since: dt.datetime | None
    since_id: str | None
    limit: int


def _query(request: web.Request) -> _Query:
    episode, since, since_id, limit = (
        request.query.get(k) for k in ("episode", "since", "since_id", "limit")
    )
    try:
        episode_ref = None if episode is None else str(uuid.UUID(episode))
        after = None if since is None else dt.datetime.fromisoformat(since)
        # A notification's id as listed (a lower-case UUID): compared as stored.
        after_id = None if since_id is None else str(uuid.UUID(since_id))
        count = 100 if limit is None else int(limit)
    except ValueError:
        raise BadRequest(
            "episode is an episode id, since a date-time, since_id a notification id, "
            "limit a number"
        ) from None
    if after is not None and after.tzinfo is None:
        raise BadRequest("since needs a time zone (e.g. 2026-12-01T09:00:00+00:00)")
    if after_id is not None and after is None:
        raise BadRequest("since_id goes with since: the received_at and id of the last one listed")
    if not 1 <= count <= MAX_LIMIT:
        raise BadRequest(f"limit is between 1 and {MAX_LIMIT}")
    # Stored in UTC; SQLite compares the text, so the moment asked about must be in UTC too.
    return _Query(episode_ref, None if after is None else after.astimezone(dt.UTC), after_id, count)


@needs("episodes:read")
async def list_notifications(request: web.Request) -> web.Response:
    """Oldest change first (`changed_at`, as the holder dated it); a borough system polls with
    `since` and `since_id` = the `received_at` and `id` of the last one received (the greatest
    pair listed), and takes as current lead professional the update not marked `superseded` (an
    older change can arrive after a newer one)."""
    notifications = request.config_dict.get(NOTIFICATIONS)
    if notifications is None:
        raise NotFound("this node is not a member of a federation")
    query = _query(request)
    episode_ref = query.episode_ref
    audit = request.config_dict[AUDIT]
    async with audit.transaction() as connection:
        listed = await notifications.listed(
            connection,
            episode_ref=episode_ref,
            since=query.since,
            since_id=query.since_id,
            limit=query.limit,
        )
        await audit.append(
            connection,
            draft(request, "notifications.read", episode_ref, results=len(listed)),
        )
    return web.json_response({"notifications": listed})
