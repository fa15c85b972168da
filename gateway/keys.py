"""Typed keys for everything the application and requests carry (STYLE: one place for them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from joserfc.jwk import OKPKey
    from sqlalchemy.ext.asyncio import AsyncEngine

    from .audit_log import AuditLog
    from .episodes import EpisodeStore
    from .observability import Metrics
    from .protection import KeyRing
    from .settings import Settings

__all__ = [
    "AUDIT",
    "ENGINE",
    "EPISODES",
    "KEY_RING",
    "METRICS",
    "REQUEST_ID",
    "SETTINGS",
    "SIGNING_KEY",
]

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine")
SIGNING_KEY: web.AppKey[OKPKey] = web.AppKey("signing_key")
KEY_RING: web.AppKey[KeyRing] = web.AppKey("key_ring")
EPISODES: web.AppKey[EpisodeStore] = web.AppKey("episodes")
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")

REQUEST_ID = web.RequestKey("request_id", str)  # set by the request-id middleware
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
