"""Authentication for /api/v1: every route declares the scope it needs; the middleware checks the
bearer token and the scope before the handler runs. A route without a declaration is refused (500),
and a meta-test lists every route to make sure none is left open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from ..errors import GatewayError, Unauthorised
from ..keys import ENGINE, SETTINGS, SIGNING_KEY
from ..oauth import Caller, client_enabled, validate_access_token

__all__ = ["CALLER", "PUBLIC", "auth_middleware", "needs", "required_scope"]

CALLER = web.RequestKey("caller", Caller)
PUBLIC = "public"  # the declaration for routes anyone may read (the OpenAPI document)
_ATTRIBUTE = "_cafx_scope"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)


def needs(scope: str) -> Callable[[H], H]:
    """Declare the scope a handler needs (or PUBLIC)."""

    def mark(handler: H) -> H:
        setattr(handler, _ATTRIBUTE, scope)
        return handler

    return mark


def required_scope(handler: object) -> str | None:
    scope = getattr(handler, _ATTRIBUTE, None)
    return scope if isinstance(scope, str) else None


class _Undeclared(GatewayError):
    """A route that forgot to say which scope it needs: refuse rather than serve it open."""


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route_handler = request.match_info.handler
    scope = required_scope(route_handler)
    if scope is None:
        if isinstance(request.match_info.http_exception, web.HTTPException):
            return await handler(request)  # 404/405: nothing to protect
        raise _Undeclared("route without a declared scope")
    if scope == PUBLIC:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise Unauthorised("a bearer token is required")
    settings = request.config_dict[SETTINGS]
    caller = validate_access_token(
        header[7:].strip(),
        request.config_dict[SIGNING_KEY],
        issuer=settings.issuer,
        audience=settings.api_audience,
    )
    caller.require(scope)
    # A token lives its lifetime, but not past the client's: a disabled system is refused now.
    if not await client_enabled(request.config_dict[ENGINE], caller.client_id):
        raise Unauthorised("this client is disabled")
    request[CALLER] = caller
    return await handler(request)
