"""The `/federation/v1` side of the transport: an aiohttp middleware that verifies every request before
its handler runs and signs every response, refusals and errors included (DESIGN 3.2).

Handlers see only verified requests: the `VerifiedRequest` sits under `VERIFIED_REQUEST`, and
`verified_json()` reads the body the digest was checked against. Errors are rendered here, in the
shape of `gateway.errors.error_middleware`, because a response that leaves this sub-app unsigned
would be refused by the calling node as forged; the parent app's error middleware never sees them.

Deployment note: the request's `@target-uri` is rebuilt as `origin + raw path`, where `origin` is the
node's published federation origin (`https://host[:port]`); without one, the scheme of the
connection and the `Host` header are used, which is right when nodes connect directly (mutual TLS
leaves no room for a TLS-terminating proxy anyway).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.errors import BadRequest, FederationRefused, GatewayError, error_body, node_busy
from gateway.keys import REQUEST_ID

from .digest import as_sent
from .replay import MAX_SKEW, ReplayStore
from .signatures import Key, KeyLookup, RequestParts, VerifiedRequest, sign_response, verify_request
from .tls import peer_member

BODY_SECONDS = 30.0  # a request body slower than this is refused stale_request

__all__ = [
    "VERIFIED_REQUEST",
    "ServerTransport",
    "federation_middleware",
    "verified_json",
    "verified_request",
]

log = logging.getLogger("cafx.federation")

VERIFIED_REQUEST = web.RequestKey("federation_verified_request", VerifiedRequest)
_NO_CONTENT = frozenset({204, 304})


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ServerTransport:
    """What the middleware needs: this node's member id and signing key, the members' keys, the
    nonce store, and (optionally) the origin this node is published at."""

    me: str
    signing_key: Key
    keyid: str
    key_lookup: KeyLookup
    replay_store: ReplayStore
    origin: str | None = None
    clock: Callable[[], dt.datetime] = _utc_now
    max_skew: dt.timedelta = MAX_SKEW
    # Told of a request from a member refused before it was verified (a bad signature, a replay,
    # a wrong digest): the node audits it. Its failure never changes the answer.
    on_refused: Callable[[web.Request, str, GatewayError], Awaitable[None]] | None = None


def target_uri(request: web.BaseRequest, origin: str | None) -> str:
    """The `@target-uri` a request was addressed at: origin plus the raw path and query."""
    base = origin.rstrip("/") if origin else f"{request.scheme}://{request.host}"
    return base + request.raw_path


def _incoming_headers(request: web.BaseRequest) -> CIMultiDict[str]:
    # The raw lines, as sent: aiohttp's decoded view could differ from the signed bytes.
    return CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers)


def _error(request: web.Request, error: GatewayError) -> web.Response:
    body = error_body(error, request.get(REQUEST_ID, "-"))
    return web.json_response(body, status=error.status)


def _http_error(request: web.Request, http: web.HTTPException) -> web.Response:
    if http.status < 400:
        location = http.headers.get("Location")
        return web.Response(
            status=http.status, headers={"Location": location} if location else None
        )
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        http.status, "bad_request"
    )
    body = {"error": code, "message": http.reason, "request_id": request.get(REQUEST_ID, "-")}
    return web.json_response(body, status=http.status)


def _internal(request: web.Request, exc: BaseException | None) -> web.Response:
    request_id = request.get(REQUEST_ID, "-")
    # Type and file:line frames only: library messages can quote input.
    frames = []
    if exc is not None:
        frames = [f"{f.filename}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)]
    log.error(
        "federation handler failed: %s",
        type(exc).__name__ if exc is not None else "unsignable response",
        extra={"request_id": request_id, "frames": frames[-8:]},
    )
    body = {"error": "internal_error", "message": "internal error", "request_id": request_id}
    return web.json_response(body, status=500)


def _sent_body(request: web.Request, response: web.Response) -> bytes:
    # What goes on the wire: nothing for HEAD, 1xx, 204 and 304, whatever the handler set.
    if request.method == "HEAD" or response.status < 200 or response.status in _NO_CONTENT:
        return b""
    return bytes(response.body or b"")  # type: ignore[arg-type]  # checked: bytes or None


def federation_middleware(
    transport: ServerTransport | web.AppKey[ServerTransport],
) -> Middleware:
    """Middleware for the `/federation/v1` sub-app. `transport` is the configuration itself, or the
    AppKey under which a `cleanup_ctx` stores it once the database and keys are ready."""

    @web.middleware
    async def federation(request: web.Request, handler: Handler) -> web.StreamResponse:
        config = (
            transport if isinstance(transport, ServerTransport) else request.config_dict[transport]
        )
        peer = peer_member(request)
        parts = RequestParts(
            request.method, target_uri(request, config.origin), _incoming_headers(request)
        )
        verified: VerifiedRequest | None = None
        response: web.StreamResponse
        try:
            if peer is None:  # the plain port, or a certificate naming no member: read nothing
                raise FederationRefused("federation requests need a federation client certificate")
            if not as_sent(request.headers):  # the digest covers the bytes as sent (RFC 9530)
                raise FederationRefused("federation requests come without a content coding")
            try:
                async with asyncio.timeout(BODY_SECONDS):
                    body = await request.read()
            except TimeoutError:
                raise FederationRefused(
                    "the request body took too long to arrive", code="stale_request"
                ) from None
            # The clock is read once the body is in: a request held open while it uploads is
            # judged (created window, key validity, nonce retention) at the moment it is accepted.
            now = config.clock()
            verified = await verify_request(
                method=parts.method,
                url=parts.url,
                headers=parts.headers,
                body=body,
                peer=peer,
                me=config.me,
                key_lookup=config.key_lookup,
                replay_store=config.replay_store,
                now=now,
                max_skew=config.max_skew,
            )
            request[VERIFIED_REQUEST] = verified
            response = await handler(request)
        except GatewayError as error:
            response = _error(request, error)
            if verified is None and peer is not None and config.on_refused is not None:
                try:
                    await config.on_refused(request, peer, error)
                except Exception as exc:  # noqa: BLE001 - the refusal stands, recorded or not
                    log.error(
                        "a refused federation request could not be recorded",
                        extra={"error": type(exc).__name__},
                    )
        except PoolTimeout:
            response = _error(request, node_busy())
        except web.HTTPException as http:
            response = _http_error(request, http)
        except Exception as exc:  # a 500, signed like every other answer
            response = _internal(request, exc)
        if (
            not isinstance(response, web.Response)
            or response.prepared
            or not isinstance(response.body, bytes | None)
            or response.compression
        ):
            # Streams, files, payloads and compressed bodies cannot be digested before sending.
            response = _internal(request, None)
        signature = sign_response(
            response.status,
            _sent_body(request, response),
            request=parts,
            sender=config.me,
            recipient=verified.sender if verified is not None else (peer or ""),
            key=config.signing_key,
            keyid=config.keyid,
            now=config.clock(),
        )
        for name in signature:
            response.headers.popall(name, None)
        response.headers.extend(signature)
        return response

    return federation


def verified_request(request: web.Request) -> VerifiedRequest:
    """The verified signature facts of a request that passed `federation_middleware`."""
    try:
        return request[VERIFIED_REQUEST]
    except KeyError:
        raise RuntimeError("not a request verified by federation_middleware") from None


async def verified_json(request: web.Request) -> Any:
    """The request body (whose digest the signature covers) as JSON."""
    verified_request(request)
    try:
        return json.loads(await request.read())
    # Nesting deeper than the decoder goes (`[[[...]]]`, well within the size limit) is a
    # RecursionError: refused like any other body that is not JSON, so the handler audits it.
    except (ValueError, RecursionError) as exc:
        raise BadRequest("the request body is not JSON") from exc
