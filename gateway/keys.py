"""Typed keys for everything the application and requests carry (STYLE: one place for them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Callable

    from joserfc.jwk import OKPKey
    from sqlalchemy.ext.asyncio import AsyncEngine

    from directory.members import MemberDirectory

    from .audit_log import AuditLog
    from .console._oidc import OidcClient
    from .console._sessions import ConsoleSessions
    from .episodes import EpisodeStore
    from .federation.approvals import DisclosureApprovals
    from .federation.notifications import Notifications
    from .federation.outbox import Outbox
    from .federation.practitioner import PractitionerRequests
    from .federation.transfer import TransferWorkflow
    from .federation.transport import FederationClient, ServerTransport
    from .observability import Metrics
    from .protection import KeyRing
    from .service_directory import LiveDirectory
    from .settings import Settings

__all__ = [
    "AUDIT",
    "CONSOLE_OIDC",
    "CONSOLE_SESSIONS",
    "DISCLOSURE_APPROVALS",
    "DIRECTORY",
    "ENGINE",
    "EPISODES",
    "KEY_RING",
    "MEMBERS",
    "METRICS",
    "NOTIFICATIONS",
    "OUTBOX",
    "PEERS",
    "REQUESTS",
    "REQUEST_ID",
    "SETTINGS",
    "SIGNING_KEY",
    "TRANSFERS",
    "TRANSPORT",
]

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine")
SIGNING_KEY: web.AppKey[OKPKey] = web.AppKey("signing_key")
KEY_RING: web.AppKey[KeyRing] = web.AppKey("key_ring")
EPISODES: web.AppKey[EpisodeStore] = web.AppKey("episodes")
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")

REQUEST_ID = web.RequestKey("request_id", str)  # set by the request-id middleware
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")

# The London protocol (present only when the node is a federation member).
MEMBERS: web.AppKey[Callable[[], MemberDirectory]] = web.AppKey("members")  # fails closed: 503
OUTBOX: web.AppKey[Outbox] = web.AppKey("outbox")
PEERS: web.AppKey[FederationClient] = web.AppKey("peers")
TRANSPORT: web.AppKey[ServerTransport] = web.AppKey("transport")
REQUESTS: web.AppKey[PractitionerRequests] = web.AppKey("requests")
TRANSFERS: web.AppKey[TransferWorkflow] = web.AppKey("transfers")
NOTIFICATIONS: web.AppKey[Notifications] = web.AppKey("notifications")
DISCLOSURE_APPROVALS: web.AppKey[DisclosureApprovals] = web.AppKey("disclosure_approvals")

# The lead CAF contact console (issue 8).
CONSOLE_SESSIONS: web.AppKey[ConsoleSessions] = web.AppKey("console_sessions")
CONSOLE_OIDC: web.AppKey[OidcClient] = web.AppKey("console_oidc")

# The service directory (issue 7).
DIRECTORY: web.AppKey[LiveDirectory] = web.AppKey("directory")
