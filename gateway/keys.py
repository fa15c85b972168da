"""Typed keys for everything the application and requests carry (STYLE: one place for them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from joserfc.jwk import OKPKey
    from sqlalchemy.ext.asyncio import AsyncEngine

    from .observability import Metrics
    from .settings import Settings

__all__ = ["ENGINE", "METRICS", "REQUEST_ID", "SETTINGS", "SIGNING_KEY"]

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine")
SIGNING_KEY: web.AppKey[OKPKey] = web.AppKey("signing_key")

REQUEST_ID = web.RequestKey("request_id", str)  # set by the request-id middleware
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
