"""Console sessions and sign-ins under way.

A signed-in session is server-side: the cookie carries a random id, the table only its SHA-256. It is
created only when a sign-in COMPLETES (replacing whatever session the browser held, so an id planted
before sign-in is worth nothing after it: session fixation), and ends at sign-out, after `idle`
without a request, or `lifetime` after the sign-in however busy (a stolen cookie kept alive by
replaying it works no longer than a working day). The CSRF token is an HMAC of the session id:
bound to the session, nothing to store.

A sign-in under way (the OIDC state, nonce and PKCE verifier the callback must check) is NOT stored:
it travels in a second short-lived cookie, sealed (AES-256-GCM, `gateway.protection`) under the
node's data-protection keys with its expiry inside. Starting a sign-in therefore writes nothing, and
leaves a signed-in session alone.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..protection import KeyRing, ProtectionError, associated_data, open_, seal
from ..storage import aware_utc
from ..storage._tables import console_sessions

__all__ = [
    "COOKIE",
    "SIGN_IN_COOKIE",
    "SIGN_IN_SECONDS",
    "ConsoleSession",
    "ConsoleSessions",
    "open_sign_in",
    "same_secret",
    "seal_sign_in",
]

COOKIE = "__Host-cafx-console"  # __Host-: Secure, Path=/, no Domain: this origin only
SIGN_IN_COOKIE = "__Host-cafx-sign-in"
SIGN_IN_SECONDS = 600  # time to sign in at the identity provider
_SIGN_IN_AD = associated_data("console", "sign-in")
_MAX_COOKIE = 2000


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def same_secret(expected: str, given: str) -> bool:
    """Constant-time comparison of a secret with what a browser sent, whatever it sent:
    `hmac.compare_digest` raises TypeError on non-ASCII str, so both are compared as UTF-8 bytes
    (lone surrogates included, which is all they can be, but never equal to our ASCII secrets)."""
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    raw_id: str
    lead_contact_id: str

    @property
    def csrf_token(self) -> str:
        return hmac.new(self.raw_id.encode(), b"console csrf", hashlib.sha256).hexdigest()

    def csrf_valid(self, token: str) -> bool:
        return same_secret(self.csrf_token, token)


LIFETIME = dt.timedelta(hours=10)


class ConsoleSessions:
    def __init__(
        self, engine: AsyncEngine, idle: dt.timedelta, lifetime: dt.timedelta = LIFETIME
    ) -> None:
        self.engine, self.idle, self.lifetime = engine, idle, lifetime

    async def signed_in(self, previous: ConsoleSession | None, lead_contact_id: str) -> str:
        """A new session (and id) for a completed sign-in; the browser's previous one ends."""
        raw = secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.UTC)
        async with self.engine.begin() as connection:
            # Old sessions go as new ones come: the table holds live sessions only.
            stale = (console_sessions.c.last_seen_at < now - self.idle) | (
                console_sessions.c.created_at < now - self.lifetime
            )
            if previous is not None:
                stale = stale | (console_sessions.c.id_hash == _hash(previous.raw_id))
            await connection.execute(delete(console_sessions).where(stale))
            await connection.execute(
                insert(console_sessions).values(
                    id_hash=_hash(raw),
                    lead_contact_id=lead_contact_id,
                    created_at=now,
                    last_seen_at=now,
                )
            )
        return raw

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
            if (
                now - aware_utc(row.last_seen_at) > self.idle
                or now - aware_utc(row.created_at) > self.lifetime
            ):
                await connection.execute(
                    delete(console_sessions).where(console_sessions.c.id_hash == row.id_hash)
                )
                return None, True
            await connection.execute(
                update(console_sessions)
                .where(console_sessions.c.id_hash == row.id_hash)
                .values(last_seen_at=now)
            )
        return ConsoleSession(raw, row.lead_contact_id), False

    async def end(self, raw: str) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(console_sessions).where(console_sessions.c.id_hash == _hash(raw))
            )


def seal_sign_in(ring: KeyRing, state: dict[str, str]) -> str:
    """The sign-in cookie's value: `state` and its expiry, sealed, base64url."""
    document = {"state": state, "expires": time.time() + SIGN_IN_SECONDS}
    sealed = seal(json.dumps(document).encode(), ring, _SIGN_IN_AD).to_bytes()
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_sign_in(ring: KeyRing, value: str | None) -> dict[str, str] | None:
    """The state a sign-in cookie holds; None if absent, tampered with, sealed elsewhere or expired."""
    if not value or len(value) > _MAX_COOKIE:
        return None
    try:
        sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        document = json.loads(open_(sealed, ring, _SIGN_IN_AD))
    except (ProtectionError, binascii.Error, ValueError):
        return None
    expires = document.get("expires") if isinstance(document, dict) else None
    if not isinstance(expires, float) or expires <= time.time():
        return None
    state = document.get("state")
    if not isinstance(state, dict) or not all(isinstance(v, str) for v in state.values()):
        return None
    return state
