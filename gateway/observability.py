"""JSON logs with a request id, and Prometheus metrics (DESIGN 4, observability).

Log lines and metric labels carry the route template (`/api/v1/episodes/{episode_id}`), never the query
string or body: query strings can hold NHS numbers and names.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .keys import METRICS, REQUEST_ID

__all__ = [
    "CURRENT_TRACE",
    "JsonFormatter",
    "Metrics",
    "configure_logging",
    "is_safe_request_id",
    "metrics_handler",
    "request_middleware",
    "trace_of",
    "traceparent",
]

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        return json.dumps(entry, default=str)


# Libraries that write secrets at DEBUG (and INFO): authlib the access tokens it issues ("Issue token
# %r to %r"), aiosqlite and SQLAlchemy the SQL parameters (secret hashes, client keys, sealed values).
# Kept at WARNING whatever the node's level, DEBUG included. Alembic too: every readiness probe
# reads the migration state, and it says "Context impl SQLiteImpl." each time.
QUIET_LOGGERS = ("authlib", "aiosqlite", "sqlalchemy", "alembic")


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.Formatter.converter = time.gmtime
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # we log requests ourselves
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


class Metrics:
    """One registry per application, so several nodes in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cafx_http_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cafx_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )


log = logging.getLogger("cafx.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


# An incoming id is kept only if it looks like one a system generates: a UUID or hex digits, with
# at least one letter. It goes into every log line and audit entry of the request, unsigned, so it
# must not be able to carry an NHS number, a date of birth or a name (`9434765919`, `2015-06-01`),
# nor break the audit log's rules for ids (which would refuse to record the request at all).
_SAFE_REQUEST_ID = re.compile(
    r"(?=.*[A-Fa-f])(?:[0-9A-Fa-f]{8,64}|[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12})"
)


def is_safe_request_id(value: str) -> bool:
    return _SAFE_REQUEST_ID.fullmatch(value) is not None


# W3C Trace Context (DESIGN 4): the trace a request belongs to, carried across nodes in
# `traceparent` and logged as `trace_id`, so one practitioner's request can be followed from the
# home node to the holder. A trace id is kept only with a hex letter in it, as a request id is: one
# of digits alone could be an NHS number or a date of birth, passed on to every member called.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
CURRENT_TRACE: ContextVar[str | None] = ContextVar("cafx_trace", default=None)
_HEX_LETTER = re.compile(r"[a-f]")


def trace_of(header: str) -> str:
    """The trace id of a valid `traceparent` (version 00, a letter among the trace id's digits,
    the parent id not all zeros), else a new one."""
    match = _TRACEPARENT.fullmatch(header.strip())
    if match is not None and _HEX_LETTER.search(match[1]) and match[2] != "0" * 16:
        return match[1]
    return secrets.token_hex(16)


def traceparent() -> str:
    """The `traceparent` of a call made now: the trace of the request being served (a new one
    outside any, as for an outbox delivery), and a new span."""
    return f"00-{CURRENT_TRACE.get() or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (or keep a sane incoming one), then log and count it."""
    incoming = request.headers.get("X-Request-ID", "")
    request[REQUEST_ID] = incoming if is_safe_request_id(incoming) else secrets.token_hex(8)
    trace = trace_of(request.headers.get("traceparent", ""))
    traced = CURRENT_TRACE.set(trace)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request[REQUEST_ID]
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        CURRENT_TRACE.reset(traced)
        elapsed = time.perf_counter() - started
        route = _route(request)
        metrics = request.config_dict.get(METRICS)
        if metrics is not None:
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(elapsed)
        log.info(
            "request",
            extra={
                "request_id": request[REQUEST_ID],
                "trace_id": trace,
                "method": request.method,
                "route": route,
                "status": status,
                "ms": round(elapsed * 1000, 2),
            },
        )


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.config_dict[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
