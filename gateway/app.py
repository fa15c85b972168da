"""`create_app(settings)`: the node as an aiohttp application (DESIGN 4, STYLE "aiohttp").

No I/O happens here: resources are made in `cleanup_ctx` generators when the app starts and released
when it stops. `/api/v1`, `/oauth` (and later `/federation/v1`, `/console`) are sub-applications with
their own authentication.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from .api import api_app
from .audit_log import AuditLog, remember_signing_key
from .audit_witness import witness_file
from .background import Loops
from .console import mount_console
from .episodes import EpisodeStore, check_index_key
from .errors import PeerUnavailable, error_middleware
from .federation.node import FEDERATION_PATH, federation_app, federation_context, federation_enabled
from .keys import AUDIT, ENGINE, EPISODES, KEY_RING, MEMBERS, METRICS, SETTINGS, SIGNING_KEY
from .oauth import oauth_app
from .observability import Metrics, metrics_handler, request_middleware
from .protection import KeyMaterialError, KeyRing
from .retention import retention_context
from .service_directory import directory_context
from .settings import Settings
from .signing import load_signing_key
from .storage import create_engine, current_revision, head_revision, upgrade

__all__ = ["create_app", "key_ring"]


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_engine(settings.database_url, schema=settings.database_schema)
    if settings.migrate_on_start:
        await upgrade(engine)
    app[ENGINE] = engine
    yield
    await engine.dispose()


async def _keys(app: web.Application) -> AsyncIterator[None]:
    """The node's signing key and data-protection key ring; without them the node cannot start."""
    settings = app[SETTINGS]
    if settings.signing_key_file is None:
        raise RuntimeError("signing_key_file is not set (create one with `cafx keys init`)")
    app[SIGNING_KEY] = load_signing_key(settings.signing_key_file)
    app[KEY_RING] = key_ring(settings, follow=True)  # `cafx keys rotate` changes it while we run
    yield


def key_ring(settings: Settings, *, follow: bool = False) -> KeyRing:
    """The data-protection key ring the settings name: `keys_json`, else `keyfile` (with `follow`,
    read again when the file changes). `RuntimeError` when neither is set."""
    if settings.keys_json is not None:
        return KeyRing.from_json(settings.keys_json.get_secret_value())
    if settings.keyfile is not None:
        return KeyRing.from_file(settings.keyfile, follow=follow)
    raise RuntimeError("keyfile (or keys_json) is not set (create one with `cafx keys init`)")


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[EPISODES] = EpisodeStore(app[KEY_RING])
    # Refuses to start on an index key other than the one the database was indexed with (a
    # database not yet migrated is checked once it is: `_index_key_checked`).
    await check_index_key(app[ENGINE], app[EPISODES])
    assert settings.signing_key_file is not None  # noqa: S101 - `_keys` refused to start without
    app[AUDIT] = AuditLog(
        app[ENGINE],
        app[SIGNING_KEY],
        settings.member_id,
        settings.audit_checkpoint_every,
        # Checkpoints signed before a signing-key rotation still verify.
        earlier_keys=remember_signing_key(settings.signing_key_file, app[SIGNING_KEY]),
        # The newest checkpoint, kept out of the database: a chain cut back before it shows.
        witness=witness_file(settings.signing_key_file),
    )
    loops = Loops()
    if settings.audit_checkpoint_seconds > 0:
        loops.start(settings.audit_checkpoint_seconds, app[AUDIT].checkpoint_head, "checkpoint")
    yield
    await loops.stop()


async def healthz(_: web.Request) -> web.Response:
    """Alive: the process answers. Says nothing about its dependencies (that is /readyz)."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database answers, its schema is at the newest migration, and (in a federation)
    the signed metadata is in force: past its expiry, or never fetched, federation traffic fails
    closed (DESIGN 4: database, metadata freshness)."""
    engine = request.config_dict[ENGINE]
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        revision = await current_revision(engine)
    except Exception as exc:  # any driver error means "not ready"; the type is enough
        raise PeerUnavailable(
            f"database unreachable ({type(exc).__name__})", code="not_ready"
        ) from exc
    if revision != head_revision():
        raise PeerUnavailable("database migrations are not current", code="not_ready")
    await _index_key_checked(request.config_dict[ENGINE], request.config_dict[EPISODES])
    members = request.config_dict.get(MEMBERS)
    if members is not None:  # a member of a federation: its signed metadata must be in force
        try:
            members()
        except PeerUnavailable as exc:
            raise PeerUnavailable(exc.message, code="not_ready") from None
    return web.json_response({"status": "ready", "migration": revision})


async def _index_key_checked(engine: AsyncEngine, store: EpisodeStore) -> None:
    """The index-key check (`check_index_key`), made once: at start, or, when the node started
    before its migrations, here. Not ready until it has passed."""
    try:
        checked = await check_index_key(engine, store)
    except KeyMaterialError as exc:
        raise PeerUnavailable(f"index key refused ({exc.rule})", code="not_ready") from None
    if not checked:
        raise PeerUnavailable("database migrations are not current", code="not_ready")


_UNGATED = frozenset({"/healthz", "/readyz", "/metrics"})


@web.middleware
async def index_key_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Nothing is served before the index key was checked (a node started before its migrations):
    the first request after them makes the check, a mismatch keeps every answer 503 `not_ready`."""
    store = request.config_dict[EPISODES]
    if not store.index_key_checked and request.path not in _UNGATED:
        await _index_key_checked(request.config_dict[ENGINE], store)
    return await handler(request)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[request_middleware, error_middleware, index_key_gate],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_keys)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(directory_context)
    app.cleanup_ctx.append(federation_context)
    app.cleanup_ctx.append(retention_context)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.add_subapp("/oauth", oauth_app(settings))
    app.add_subapp("/api/v1", api_app(settings.max_body_bytes))
    if federation_enabled(settings):
        app.add_subapp(FEDERATION_PATH, federation_app())
    mount_console(app, settings)
    return app
