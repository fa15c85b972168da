"""Server-side console sessions: the cookie carries a random id, the table only its SHA-256.

A session starts when someone begins to sign in (it then holds the OIDC state, nonce and PKCE
verifier) and is REPLACED by a new one when the sign-in completes, so an id planted before sign-in is
worth nothing after it (session fixation). It ends at sign-out or after `idle` without a request.
The CSRF token is an HMAC of the session id: bound to the session, nothing more to store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..storage._tables import console_sessions

__all__ = ["COOKIE", "ConsoleSession", "ConsoleSessions"]

COOKIE = "__Host-cafx-console"  # __Host-: Secure, Path=/, no Domain: this origin only


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    raw_id: str
    lead_contact_id: str | None
    sign_in: dict[str, Any] | None

    @property
    def csrf_token(self) -> str:
        return hmac.new(self.raw_id.encode(), b"console csrf", hashlib.sha256).hexdigest()

    def csrf_valid(self, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token, token)


class ConsoleSessions:
    def __init__(self, engine: AsyncEngine, idle: dt.timedelta) -> None:
        self.engine, self.idle = engine, idle

    async def _create(self, lead_contact_id: str | None, sign_in: dict[str, Any] | None) -> str:
        raw = secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.UTC)
        async with self.engine.begin() as connection:
            # Old sessions go as new ones come: the table holds live sessions only.
            await connection.execute(
                delete(console_sessions).where(console_sessions.c.last_seen_at < now - self.idle)
            )
            await connection.execute(
                insert(console_sessions).values(
                    id_hash=_hash(raw),
                    lead_contact_id=lead_contact_id,
                    sign_in=sign_in,
                    created_at=now,
                    last_seen_at=now,
                )
            )
        return raw

    async def begin_sign_in(self, sign_in: dict[str, Any]) -> str:
        """A pre-sign-in session holding what the callback must check."""
        return await self._create(None, sign_in)

    async def signed_in(self, previous: ConsoleSession, lead_contact_id: str) -> str:
        """The pre-sign-in session ends; a new id is issued for the signed-in one."""
        await self.end(previous.raw_id)
        return await self._create(lead_contact_id, None)

    async def load(self, raw: str | None) -> tuple[ConsoleSession | None, bool]:
        """(session, expired): a live session is touched; an idle one is deleted."""
        if not raw or len(raw) > 100:
            return None, False
        now = dt.datetime.now(dt.UTC)
        async with self.engine.begin() as connection:
            row = (
                await connection.execute(
                    select(console_sessions).where(console_sessions.c.id_hash == _hash(raw))
                )
            ).one_or_none()
            if row is None:
                return None, False
            last_seen = row.last_seen_at
            if last_seen.tzinfo is None:  # SQLite hands back naive datetimes
                last_seen = last_seen.replace(tzinfo=dt.UTC)
            if now - last_seen > self.idle:
                await connection.execute(
                    delete(console_sessions).where(console_sessions.c.id_hash == row.id_hash)
                )
                return None, True
            await connection.execute(
                update(console_sessions)
                .where(console_sessions.c.id_hash == row.id_hash)
                .values(last_seen_at=now)
            )
        return ConsoleSession(raw, row.lead_contact_id, row.sign_in), False

    async def end(self, raw: str) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(console_sessions).where(console_sessions.c.id_hash == _hash(raw))
            )
