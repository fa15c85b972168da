"""One error tree for the node; each class is one stable wire code (DESIGN 3.4).

    GatewayError(status, code, message)
    ├── BadRequest                    400 bad_request
    │   ├── SchemaViolation           422 schema_violation
    │   ├── UnsupportedFormat         415 unsupported_format
    │   └── PayloadTooLarge           413 payload_too_large
    ├── Unauthorised                  401 invalid_token / invalid_client / invalid_grant
    ├── Forbidden                     403 insufficient_scope / not_lead_contact / self_approval
    ├── NotFound                      404 not_found
    ├── Conflict                      409 conflict / idempotency_key_reused / already_decided /
    │                                     episode_exists
    ├── PreconditionFailed            412 precondition_failed
    ├── ConsentRefused                403 consent_missing / consent_excluded / consent_withdrawn /
    │                                     consent_expired / purpose_not_permitted
    ├── FederationRefused             403 invalid_signature, unknown_member, member_suspended,
    │                                     wrong_recipient, stale_request, replayed_request,
    │                                     attestation_invalid, not_lead_contact, self_approval
    ├── RateLimited                   429 rate_limited
    └── PeerUnavailable               503 peer_unavailable / not_ready / busy

Besides these, the middleware gives aiohttp's own refusals a code (`method_not_allowed` 405, and
404, 413, 400 as above) and anything unexpected `internal_error` 500. `ambiguous_match` is not an
error status: an ambiguous existence check is a 200 answer that says so (DESIGN 3.4). Every code is
listed, with what a client should do, in docs/errors.md (a test keeps the two in step).

`error_middleware` renders every `GatewayError` as `{"error", "message", "request_id"}` (plus located
`problems` where there are several); a wait for a database connection that ran out is a 503 `busy`
(`node_busy()`: the node is full, not broken); anything else is a 500 with a generic message and the
request id in the log. Messages never hold personal data: they say which field and which rule.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from aiohttp import web
from sqlalchemy.exc import TimeoutError as PoolTimeout

from schemas import Problem

from .keys import REQUEST_ID

__all__ = [
    "BadRequest",
    "Conflict",
    "ConsentRefused",
    "FederationRefused",
    "Forbidden",
    "GatewayError",
    "NotFound",
    "PayloadTooLarge",
    "PeerUnavailable",
    "RateLimited",
    "SchemaViolation",
    "Unauthorised",
    "UnsupportedFormat",
    "error_body",
    "error_middleware",
    "node_busy",
]

log = logging.getLogger("cafx.errors")


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    codes: ClassVar[frozenset[str]] = frozenset()  # for classes that carry one of several codes
    # The audited action refused, when the raiser knows it better than the call did (a decline
    # that turned out to be a release).
    refused_action: ClassVar[str | None] = None

    def __init__(
        self, message: str, *, code: str | None = None, problems: Sequence[Problem] = ()
    ) -> None:
        super().__init__(message)
        if code is not None and code not in self.codes:
            raise ValueError(f"{type(self).__name__} does not carry the code {code}")
        self.message = message
        self.wire_code = code or self.code
        self.problems = list(problems)


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


class SchemaViolation(BadRequest):
    status = 422
    code = "schema_violation"


class UnsupportedFormat(BadRequest):
    status = 415
    code = "unsupported_format"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"


class Unauthorised(GatewayError):
    status = 401
    code = "invalid_token"
    codes = frozenset({"invalid_token", "invalid_client", "invalid_grant"})


class Forbidden(GatewayError):
    status = 403
    code = "insufficient_scope"
    codes = frozenset({"insufficient_scope", "not_lead_contact", "self_approval"})


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class Conflict(GatewayError):
    status = 409
    code = "conflict"
    codes = frozenset({"conflict", "idempotency_key_reused", "already_decided", "episode_exists"})


class PreconditionFailed(GatewayError):
    status = 412
    code = "precondition_failed"


class ConsentRefused(GatewayError):
    status = 403
    code = "consent_missing"
    codes = frozenset(
        {
            "consent_missing",
            "consent_excluded",
            "consent_withdrawn",
            "consent_expired",
            "purpose_not_permitted",
        }
    )


class FederationRefused(GatewayError):
    status = 403
    code = "invalid_signature"
    codes = frozenset(
        {
            "invalid_signature",
            "unknown_member",
            "member_suspended",
            "wrong_recipient",
            "stale_request",
            "replayed_request",
            "attestation_invalid",
            "not_lead_contact",
            "self_approval",
        }
    )


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"


class PeerUnavailable(GatewayError):
    status = 503
    code = "peer_unavailable"
    codes = frozenset({"peer_unavailable", "not_ready", "busy"})


def node_busy() -> PeerUnavailable:
    """For `PoolTimeout`: every database connection stayed taken for the pool's whole wait (a SQLite
    node has one; requests beyond what it serves queue for it)."""
    return PeerUnavailable("the node is busy; try again shortly", code="busy")


def error_body(error: GatewayError, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "error": error.wire_code,
        "message": error.message,
        "request_id": request_id,
    }
    if error.problems:
        body["problems"] = [
            {"location": p.where, "rule": p.rule, "message": p.message, "severity": p.severity}
            for p in error.problems
        ]
    return body


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.get(REQUEST_ID, "-")
    try:
        return await handler(request)
    except GatewayError as error:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return web.json_response(
            error_body(error, request_id), status=error.status, headers=headers
        )
    except PoolTimeout:
        return web.json_response(error_body(node_busy(), request_id), status=503)
    except web.HTTPException as http:
        if http.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            http.status, "bad_request"
        )
        body = {"error": code, "message": http.reason, "request_id": request_id}
        return web.json_response(body, status=http.status)
    except Exception as exc:
        # Library exceptions can quote input (SQL parameters, parsed values): log the type and the
        # stack's file:line frames only, never the message.
        frames = [f"{f.filename}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)]
        log.error(
            "unhandled %s",
            type(exc).__name__,
            extra={"request_id": request_id, "frames": frames[-8:]},
        )
        body = {"error": "internal_error", "message": "internal error", "request_id": request_id}
        return web.json_response(body, status=500)
