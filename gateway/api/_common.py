"""What every /api/v1 handler needs: the caller, parsed bodies, audit drafts, adapter errors."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from adapters import AdapterError
from schemas import Problem, problems_from

from ..audit import AuditDraft, JsonValue, Outcome
from ..errors import GatewayError, NotFound, PayloadTooLarge, SchemaViolation, UnsupportedFormat
from ..keys import AUDIT, REQUEST_ID
from ._auth import CALLER

__all__ = [
    "actor",
    "adapter_error",
    "audited_refusals",
    "draft",
    "episode_id_of",
    "json_body",
    "safe_code",
]

_CODE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def safe_code(value: str) -> str:
    """A caller-chosen id fit for the audit log (codes only), or a marker that it was not."""
    return value if _CODE.fullmatch(value) else "not-a-code"


M = TypeVar("M", bound=BaseModel)


def episode_id_of(request: web.Request) -> uuid.UUID:
    """The `{episode_id}` of the route; anything that is not a UUID names no episode."""
    try:
        return uuid.UUID(request.match_info["episode_id"])
    except ValueError:
        raise NotFound("no such episode") from None


def actor(request: web.Request) -> str:
    return f"client:{request[CALLER].client_id}"


def draft(
    request: web.Request,
    action: str,
    subject: str | None,
    outcome: Outcome = Outcome.SUCCESS,
    reason: str | None = None,
    **details: JsonValue,
) -> AuditDraft:
    return AuditDraft(
        actor=actor(request),
        action=action,
        outcome=outcome,
        subject=subject,
        reason=reason,
        request_id=request[REQUEST_ID],
        details=details,
    )


async def json_body(request: web.Request, model: type[M]) -> M:
    """The request body as `model`, or a 422 naming each bad field (never its value)."""
    raw = await request.read()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise SchemaViolation(
            "the request body is not valid", problems=problems_from(exc)
        ) from None


def adapter_error(error: AdapterError) -> GatewayError:
    problems = error.problems or [Problem((), error.code, error.message, location=error.location)]
    if error.code == "payload_too_large":
        return PayloadTooLarge(error.message, problems=problems)
    if error.code == "unsupported_format":
        return UnsupportedFormat(error.message, problems=problems)
    return SchemaViolation(error.message, problems=problems)


@asynccontextmanager
async def audited_refusals(
    request: web.Request, action: str, subject: str | None
) -> AsyncIterator[None]:
    """Record a refused or failed call (its own transaction: the call's one rolled back)."""
    try:
        yield
    except GatewayError as error:
        outcome = Outcome.REFUSED if error.status in (403, 409) else Outcome.FAILED
        refused = error.refused_action or action
        entry = draft(request, refused, subject, outcome, reason=error.wire_code)
        await request.config_dict[AUDIT].record(entry)
        raise
