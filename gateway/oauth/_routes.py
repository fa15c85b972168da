"""`/oauth/token`: look up what authlib needs, let it decide, record the assertion's jti."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from aiohttp import web
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from yarl import URL

from directory.members import is_loopback

from ..errors import PayloadTooLarge
from ..keys import ENGINE, SETTINGS, SIGNING_KEY
from ..settings import Settings
from ..storage._tables import used_assertions
from ._clients import load_client
from ._server import CLIENT_REFUSED, Assertion, TokenServer

__all__ = ["oauth_app"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The columns that hold them (clients.id, used_assertions.jti).
_LONGEST_CLIENT_ID, _LONGEST_JTI = 64, 256
# A token request is a short form (one assertion of a few hundred bytes): not the node's 4 MiB.
MAX_TOKEN_REQUEST_BYTES = 16 * 1024


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    # RFC 6749 5.2 shape; the node's own error middleware is not used for the token endpoint.
    return web.json_response({"error": error, "error_description": description}, status=status)


def _unverified_claims(assertion: str) -> dict[str, Any]:
    """Peek at an assertion's claims to find which client to load (authlib verifies it later)."""
    try:
        claims = json.loads(jws.extract_compact(assertion.encode()).payload)
    except (JoseError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _basic_client_id(request: web.Request) -> str | None:
    """The client id of HTTP Basic credentials, read as authlib reads them."""
    try:
        client_id, _ = extract_basic_authorization(request.headers)
    except UnicodeDecodeError:  # not UTF-8: names nobody (authlib is told the same)
        return None
    return client_id if isinstance(client_id, str) else None


def _storable(value: object, longest: int) -> bool:
    """Fits its column and holds no control character (PostgreSQL refuses NUL in text): anything
    else names no client and no assertion, and never reaches the database."""
    return isinstance(value, str) and 0 < len(value) <= longest and value.isprintable()


async def token(request: web.Request) -> web.Response:
    settings, engine = request.config_dict[SETTINGS], request.config_dict[ENGINE]
    too_large = PayloadTooLarge(f"a token request is at most {MAX_TOKEN_REQUEST_BYTES} bytes")
    if (request.content_length or 0) > MAX_TOKEN_REQUEST_BYTES:
        raise too_large  # not read at all
    try:  # a chunked body is read up to the limit, no further
        posted = await request.clone(client_max_size=MAX_TOKEN_REQUEST_BYTES).post()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    except ValueError:  # a body that is no form (multipart without a boundary, ...)
        return _oauth_error("invalid_request", "the body is not a form")
    if any(len(posted.getall(k)) > 1 for k in posted):
        return _oauth_error("invalid_request", "a parameter is repeated")
    form = {k: v for k, v in posted.items() if isinstance(v, str)}
    claims: dict[str, Any] = {}
    if form.get("client_assertion_type") == ASSERTION_TYPE and "client_assertion" in form:
        claims = _unverified_claims(form["client_assertion"])
        client_id = claims.get("sub")
    else:
        client_id = _basic_client_id(request)
    jti = claims.get("jti")
    if isinstance(jti, str) and not _storable(jti, _LONGEST_JTI):
        return _oauth_error("invalid_client", "the assertion's jti is too long or not printable")
    client = None
    if isinstance(client_id, str) and _storable(client_id, _LONGEST_CLIENT_ID):
        client = await load_client(
            engine, client_id, allow_secret=settings.allow_client_secret_basic
        )
    assertion = Assertion()
    if client is not None and isinstance(jti, str):
        async with engine.connect() as connection:
            seen = await connection.execute(
                select(used_assertions.c.jti).where(
                    used_assertions.c.client_id == client.client_id, used_assertions.c.jti == jti
                )
            )
            assertion.seen_before = seen.first() is not None
    server = TokenServer(
        client,
        request.config_dict[SIGNING_KEY],
        issuer=settings.issuer,
        audience=settings.api_audience,
        token_endpoint=settings.token_endpoint,
        ttl=settings.token_ttl_seconds,
        assertion=assertion,
        allow_secret=settings.allow_client_secret_basic,
    )
    # Off the event loop: signature checks and scrypt would hold up every other request.
    status, body, headers = await asyncio.to_thread(server.respond, form, request.headers)
    if status == 200 and assertion.accepted is not None and client is not None:
        accepted_jti, exp = assertion.accepted
        now = dt.datetime.now(dt.UTC)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    delete(used_assertions).where(
                        used_assertions.c.expires_at < now - dt.timedelta(minutes=5)
                    )
                )
                await connection.execute(
                    insert(used_assertions).values(
                        client_id=client.client_id,
                        jti=accepted_jti,
                        expires_at=dt.datetime.fromtimestamp(exp, dt.UTC),
                    )
                )
        except IntegrityError:  # the same assertion raced us to this point
            return _oauth_error("invalid_client", CLIENT_REFUSED)
    response = web.json_response(body, status=status)
    for name, value in headers:
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def oauth_app(settings: Settings) -> web.Application:
    if settings.allow_client_secret_basic and not (
        is_loopback(URL(settings.public_url).host) and is_loopback(settings.host)
    ):
        # A shared secret sent with every token request: never on a node others can reach.
        raise RuntimeError(
            "allow_client_secret_basic is for development on this machine only: public_url and"
            " host must be loopback addresses"
        )
    app = web.Application()
    app.router.add_post("/token", token)
    return app
