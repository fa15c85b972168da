"""Serving a node: the plain listener for `/api/v1` (and `/oauth`, health, metrics) and, for a
federation member, the mutual-TLS listener peers call. One application behind both: `/federation/v1`
refuses any request that did not arrive with a federation client certificate."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from aiohttp import web

from .app import create_app
from .federation.node import federation_enabled
from .federation.transport import server_context
from .settings import Settings

__all__ = ["serve_forever", "start"]

SHUTDOWN_TIMEOUT = 15.0  # seconds requests in flight get to finish


async def start(settings: Settings) -> web.AppRunner:
    """Start the node's listeners; `await runner.cleanup()` stops them gracefully."""
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    sites = [web.TCPSite(runner, settings.host, settings.port)]
    if federation_enabled(settings) and settings.federation_port is not None:
        assert settings.tls_cert_file and settings.tls_key_file and settings.ca_file  # noqa: S101
        context = server_context(settings.tls_cert_file, settings.tls_key_file, settings.ca_file)
        sites.append(
            web.TCPSite(
                runner,
                settings.host,
                settings.federation_port,
                ssl_context=context,
            )
        )
    for site in sites:
        await site.start()
    return runner


async def serve_forever(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then let requests in flight finish and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = await start(settings)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
