"""Wiring the London protocol into a node: metadata (polled, fail-closed), the mutual-TLS client,
the transport's server side, the outbox delivery loop, and the practitioner-request workflow."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from directory.members import (
    MemberDirectory,
    MemberError,
    MetadataExpired,
    MetadataSource,
    MetadataUnavailable,
    load_public_key,
)

from ..audit import AuditDraft, Outcome
from ..background import Loops
from ..errors import FederationRefused, GatewayError, PeerUnavailable
from ..keys import (
    AUDIT,
    DISCLOSURE_APPROVALS,
    ENGINE,
    EPISODES,
    KEY_RING,
    MEMBERS,
    NOTIFICATIONS,
    OUTBOX,
    PEERS,
    REQUEST_ID,
    REQUESTS,
    SETTINGS,
    SIGNING_KEY,
    TRANSFERS,
    TRANSPORT,
)
from ..settings import Settings
from .approvals import DisclosureApprovals
from .attestation import ATTESTATION_HEADER
from .holder import federation_routes
from .kept_metadata import DatabaseKeeper
from .notifications import Notifications
from .outbox import Message, Outbox, acknowledged
from .practitioner import PractitionerRequests
from .transfer import TransferWorkflow
from .transport import (
    FederationClient,
    ServerTransport,
    SqlReplayStore,
    client_context,
    federation_middleware,
    federation_session,
)

__all__ = ["federation_app", "federation_context", "federation_enabled"]

FEDERATION_PATH = "/federation/v1"
# Unanswered transfer offers (a day-level rule), requests cut off mid-send, requests whose override
# lapsed while they waited and expired holds are looked for this often, and once at start.
HOUSEKEEPING_SECONDS = 300.0


def federation_enabled(settings: Settings) -> bool:
    return settings.federation_metadata is not None


def _required(settings: Settings) -> tuple[Any, ...]:
    needed = {
        "operator_public_key_file": settings.operator_public_key_file,
        "tls_cert_file": settings.tls_cert_file,
        "tls_key_file": settings.tls_key_file,
        "ca_file": settings.ca_file,
    }
    missing = [name for name, value in needed.items() if value is None]
    if missing:
        raise RuntimeError(f"federation settings missing: {', '.join(missing)}")
    return tuple(needed.values())


def _directory(source: MetadataSource) -> MemberDirectory:
    """The current member directory, or a 503: after the metadata expires the node fails closed."""
    try:
        return source.current()
    except (MetadataExpired, MetadataUnavailable) as exc:
        raise PeerUnavailable(f"federation metadata unusable ({type(exc).__name__})") from None


async def _audit_refusal(request: web.Request, peer: str, error: GatewayError) -> None:
    """A member's request refused before it was verified: audited, as every refusal is."""
    await request.config_dict[AUDIT].record(
        AuditDraft(
            actor=f"member:{peer}",
            action="federation.request",
            outcome=Outcome.REFUSED,
            reason=error.wire_code,
            request_id=request.get(REQUEST_ID),
        )
    )


def _key_lookup(source: MetadataSource) -> Any:
    def key_for(member: str, kid: str, at: dt.datetime) -> Any:
        try:
            return _directory(source).key_for(member, kid, at)
        except MemberError as error:
            raise FederationRefused(str(error), code=error.code) from None

    return key_for


async def federation_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: everything the protocol needs, and its two background loops."""
    settings = app[SETTINGS]
    if not federation_enabled(settings):
        yield
        return
    operator_key_file, cert, key, ca = _required(settings)
    assert settings.federation_metadata is not None  # noqa: S101 - checked by federation_enabled
    source = MetadataSource(
        settings.federation_metadata,
        load_public_key(operator_key_file),
        keeper=DatabaseKeeper(
            app[ENGINE]
        ),  # the rollback floor outlives restarts, for every replica
    )
    with contextlib.suppress(
        Exception
    ):  # an unreachable source at start: serve 503 until it answers
        await source.refresh()
    app[MEMBERS] = lambda: _directory(source)
    signing_key = app[SIGNING_KEY]
    keyid = signing_key.kid or ""
    lookup = _key_lookup(source)
    app[TRANSPORT] = ServerTransport(
        me=settings.member_id,
        signing_key=signing_key,
        keyid=keyid,
        key_lookup=lookup,
        # In the database, SQLite too: a restart must not forget the nonces of the last 10 minutes
        # (nor may replicas each keep their own).
        replay_store=SqlReplayStore(app[ENGINE]),
        origin=settings.federation_public_url,
        on_refused=_audit_refusal,
    )
    session = federation_session(client_context(cert, key, ca))

    def endpoint(member: str) -> str:
        return _directory(source).active(member).endpoint.rstrip("/") + FEDERATION_PATH

    peers = FederationClient(
        session,
        me=settings.member_id,
        signing_key=signing_key,
        keyid=keyid,
        endpoints=endpoint,
        response_keys=lookup,
    )
    app[PEERS] = peers
    outbox = Outbox(
        app[ENGINE],
        app[KEY_RING],
        deadline=dt.timedelta(hours=settings.outbox_delivery_deadline_hours),
    )
    app[OUTBOX] = outbox
    transfers = TransferWorkflow(
        settings.member_id,
        app[EPISODES],
        outbox,
        app[KEY_RING],
        app[AUDIT],
        signing_key=signing_key,
        key_for=lookup,
        answer_working_days=settings.transfer_answer_working_days,
        members=app[MEMBERS],
    )
    app[TRANSFERS] = transfers
    app[NOTIFICATIONS] = Notifications(app[KEY_RING], key_for=lookup)

    async def call(
        target: str, path: str, body: Mapping[str, Any], attestation: str
    ) -> tuple[int, Any]:
        reply = await peers.post(target, path, body, headers={ATTESTATION_HEADER: attestation})
        return reply.status, reply.body if isinstance(reply.body, dict) else {}

    app[REQUESTS] = PractitionerRequests(
        me=settings.member_id,
        ring=app[KEY_RING],
        audit=app[AUDIT],
        signing_key=signing_key,
        is_lead_contact=lambda member, contact: _directory(source).is_lead_contact(member, contact),
        call=call,
        key_for=lookup,
        auto_approve_roles=frozenset(settings.auto_approve_existence_roles),
        auto_approver=settings.auto_approver,
    )

    app[DISCLOSURE_APPROVALS] = DisclosureApprovals(
        me=settings.member_id,
        policy=settings.disclosure_approval,
        ring=app[KEY_RING],
        audit=app[AUDIT],
        store=app[EPISODES],
        outbox=outbox,
        signing_key=signing_key,
        is_lead_contact=lambda member, contact: _directory(source).is_lead_contact(member, contact),
        members=app[MEMBERS],
    )

    async def send(recipient: str, messages: list[Message]) -> dict[str, str]:
        try:
            reply = await peers.post(
                recipient, "/messages", {"messages": [m.as_json() for m in messages]}
            )
        except MemberError as error:  # not a member (dead-lettered), or suspended (held back)
            raise FederationRefused(str(error), code=error.code) from None  # GSS codes only
        return acknowledged(reply.status, reply.body)

    polling = asyncio.create_task(source.poll_forever(settings.metadata_poll_seconds))
    loops = Loops()
    loops.start(settings.outbox_interval_seconds, lambda: outbox.deliver_due(send), "outbox")
    loops.start(HOUSEKEEPING_SECONDS, transfers.escalate, "transfer-escalation")
    loops.start(HOUSEKEEPING_SECONDS, app[REQUESTS].fail_interrupted, "interrupted-requests")
    loops.start(HOUSEKEEPING_SECONDS, app[DISCLOSURE_APPROVALS].expire, "expired-holds")
    loops.start(
        HOUSEKEEPING_SECONDS, app[REQUESTS].fail_expired_overrides, "expired-override-requests"
    )
    yield
    polling.cancel()  # a metadata fetch over HTTP: nothing of the database to leave half done
    with contextlib.suppress(asyncio.CancelledError):
        await polling
    await loops.stop()
    await session.close()


def federation_app() -> web.Application:
    app = web.Application(middlewares=[federation_middleware(TRANSPORT)])
    federation_routes(app)
    return app
