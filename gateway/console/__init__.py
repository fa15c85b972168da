"""The lead CAF contact console (issue 8): server-rendered pages at `/console` for the protocol's human
steps. Sign-in with OpenID Connect against the borough's identity provider (or, for the demo and the
tests, the built-in one at `/dev-idp`); only this borough's listed lead CAF contacts get in.

    /console/queue            practitioners' requests to verify: approve or reject with a note
    /console/overrides        public-interest overrides awaiting a second, different approver
    /console/episodes         find an episode by its id, or a child's episodes by match keys
                              (POST: subject access, held and received)
    /console/episodes/{id}    consent in force, the consent engine's answer for a recipient, the
                              sharing register (+ .csv / .pdf export for a subject access request)
    /console/federation       members, metadata version and expiry, transfer offers (withdraw,
                              decline), dead letters with retry
    /console/audit            the audit chain checked since its latest checkpoint (POST: verified
                              whole) and its latest checkpoints
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web
from prometheus_client import Counter
from yarl import URL

from directory.members import is_loopback

from ..keys import CONSOLE_OIDC, CONSOLE_SESSIONS, ENGINE, METRICS
from ..settings import Settings
from . import _child, _due, _federation, _queue, _signin
from ._oidc import OidcClient
from ._sessions import ConsoleSessions
from ._web import ANONYMOUS_REFUSALS, CONSOLE_PATH, cross_site, csrf, guard, sessions
from .dev_provider import DEV_PROVIDER, DEV_PROVIDER_PATH, DevProvider, dev_provider_app

__all__ = ["CONSOLE_PATH", "DEV_PROVIDER_PATH", "mount_console"]

_HERE = Path(__file__).parent


def _filters(env: jinja2.Environment) -> None:
    def when(moment: dt.datetime | None) -> str:
        if moment is None:
            return ""
        return moment.astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC")

    def label(code: str | None) -> str:
        return (code or "").replace("_", " ")

    env.filters["when"] = when
    env.filters["label"] = label


def _console_app() -> web.Application:
    # `cross_site` before `sessions`: a page another site opens must not even keep a session alive.
    app = web.Application(middlewares=[guard, cross_site, sessions, csrf])
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True
    )
    _filters(env)
    r = app.router
    r.add_get("/", _redirect_to_queue)
    r.add_get("/sign-in", _signin.sign_in_page)
    r.add_get("/auth/start", _signin.start)
    r.add_get("/auth/callback", _signin.callback)
    r.add_post("/sign-out", _signin.sign_out)
    r.add_get("/queue", _queue.queue_page)
    r.add_get("/overrides", _queue.overrides_page)
    r.add_post("/requests/{request_id}/decision", _queue.decide)
    r.add_post("/disclosures/{approval_id}/decision", _queue.decide_disclosure)
    r.add_get("/episodes", _child.episode_lookup)
    r.add_post("/episodes", _child.find_child)
    r.add_get("/episodes/{episode_id}", _child.child_page)
    r.add_get("/episodes/{episode_id}/register.{format:csv|pdf}", _child.export_register)
    r.add_get("/federation", _federation.federation_page)
    r.add_post("/federation/messages/{message_id}/retry", _federation.retry_message)
    r.add_post("/federation/messages/{message_id}/give-up", _federation.give_up_message)
    r.add_post("/federation/transfers/{offer_id}/close", _federation.close_offer)
    r.add_get("/due", _due.due_page)
    r.add_get("/audit", _federation.audit_page)
    r.add_post("/audit", _federation.audit_page)  # verify the whole chain
    r.add_static("/static", _HERE / "static", append_version=False)
    return app


async def _redirect_to_queue(_: web.Request) -> web.Response:
    raise web.HTTPSeeOther(f"{CONSOLE_PATH}/queue")


def mount_console(app: web.Application, settings: Settings) -> None:
    """Mount `/console` (and `/dev-idp` when the built-in provider is on) on the node's app."""
    if not settings.console_enabled:
        return
    secret = settings.console_client_secret
    issuer = settings.console_issuer
    redirect = settings.console_redirect_url or f"{settings.issuer}{CONSOLE_PATH}/auth/callback"
    if settings.console_dev_provider:
        if not settings.console_dev_password:
            raise RuntimeError("console_dev_provider needs console_dev_password")
        if not (is_loopback(URL(settings.public_url).host) and is_loopback(settings.host)):
            # One shared password signs anyone in as any lead contact: never on a reachable node.
            raise RuntimeError(
                "console_dev_provider is for development on this machine only: public_url and host"
                " must be loopback addresses"
            )
        secret = secret or secrets.token_urlsafe(32)  # this process is both client and provider
        issuer = issuer or f"{settings.issuer}{DEV_PROVIDER_PATH}"
        provider = DevProvider(
            issuer, settings.console_client_id, secret, redirect, settings.console_dev_password
        )
        app.add_subapp(DEV_PROVIDER_PATH, dev_provider_app(provider))
        app[DEV_PROVIDER] = provider  # the tests mint ID tokens with its key
    assert issuer is not None  # noqa: S101 - console_enabled says one of the two is set

    async def context(app: web.Application) -> AsyncIterator[None]:
        """On the node's app (after its database): the session store and the OIDC client."""
        app[CONSOLE_SESSIONS] = ConsoleSessions(
            app[ENGINE],
            dt.timedelta(minutes=settings.console_idle_minutes),
            lifetime=dt.timedelta(hours=settings.console_session_hours),
        )
        async with aiohttp.ClientSession() as session:
            app[CONSOLE_OIDC] = OidcClient(
                session,
                issuer=issuer,
                client_id=settings.console_client_id,
                client_secret=secret,
                redirect_url=redirect,
                # The built-in provider is on the node's own (loopback) origin; a real one is not.
                allow_http=settings.console_dev_provider and settings.console_issuer is None,
            )
            yield

    app[ANONYMOUS_REFUSALS] = Counter(
        "cafx_console_anonymous_refusals",
        "Console requests refused before anyone was identified, by reason",
        ["reason"],
        registry=app[METRICS].registry,
    )
    app.cleanup_ctx.append(context)
    app.add_subapp(CONSOLE_PATH, _console_app())
