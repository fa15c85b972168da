"""`/oauth/token`: look up what authlib needs, let it decide, record the assertion's jti."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from aiohttp import web
from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from ..keys import ENGINE, SETTINGS, SIGNING_KEY
from ..storage._tables import used_assertions
from ._clients import load_client
from ._server import Assertion, TokenServer

__all__ = ["oauth_app"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


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


def _basic_client_id(header: str) -> str | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


async def token(request: web.Request) -> web.Response:
    settings, engine = request.config_dict[SETTINGS], request.config_dict[ENGINE]
    posted = await request.post()
    if any(len(posted.getall(k)) > 1 for k in posted):
        return _oauth_error("invalid_request", "a parameter is repeated")
    form = {k: v for k, v in posted.items() if isinstance(v, str)}
    claims: dict[str, Any] = {}
    if form.get("client_assertion_type") == ASSERTION_TYPE and "client_assertion" in form:
        claims = _unverified_claims(form["client_assertion"])
        client_id = claims.get("sub")
    else:
        client_id = _basic_client_id(request.headers.get("Authorization", ""))
    client = None
    if isinstance(client_id, str):
        client = await load_client(
            engine, client_id, allow_secret=settings.allow_client_secret_basic
        )
    assertion = Assertion()
    jti = claims.get("jti")
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
    )
    status, body, headers = server.respond(form, request.headers)
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
            return _oauth_error("invalid_client", "JWT ID is used before.")
    response = web.json_response(body, status=status)
    for name, value in headers:
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def oauth_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/token", token)
    return app
