"""Run the app: listeners, TLS, the limits of the HTTP parser and of connections, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from pathlib import Path

from aiohttp import web

from gateway.app import create_app, create_metrics_app
from gateway.config.load import LoadedConfig
from gateway.config.schema import Settings, split_host_port
from gateway.http.limits import CONNECTION_LIMITS, LimitedSite, parser_logger

log = logging.getLogger("registry_gateway")


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    tls = settings.server.tls
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.cert), str(tls.key))
    return context


async def serve(loaded: LoadedConfig, config_path: Path) -> None:
    settings = loaded.settings
    limits = settings.server.limits
    app = create_app(loaded, config_path)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=limits.idle_timeout,
        max_line_size=limits.max_line_size,
        max_field_size=limits.max_field_size,
        max_headers=limits.max_headers,
        logger=parser_logger(),
        # A client that hangs up cancels its handler, and with it the upstream exchange.
        handler_cancellation=True,
    )
    await runner.setup()
    runners = [runner]
    try:
        await _start_sites(app, runner, settings, runners)
    except BaseException:
        # A port in use or a bad TLS file: close what started (upstream session, Redis) first.
        for active in reversed(runners):
            await active.cleanup()
        raise
    log.info("registry-gateway listening on %s (public URL %s, upstream %s)",
             settings.server.listen, settings.server.public_url, settings.upstream.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        for active in reversed(runners):
            await active.cleanup()


async def _start_sites(app: web.Application, runner: web.AppRunner, settings: Settings,
                       runners: list[web.AppRunner]) -> None:
    # What is alive now (config, compiled rules, modules) lives as long as the process: keep it
    # out of the cyclic GC's full passes, each of which would stall the event loop for tens of ms.
    gc.freeze()
    host, port = split_host_port(settings.server.listen)
    # Connection cap and head deadline: aiohttp has no setting for either (see limits.py).
    site = LimitedSite(runner, host, port, app[CONNECTION_LIMITS],
                       ssl_context=tls_context(settings), backlog=1024)
    await site.start()
    if settings.server.metrics_listen:
        metrics_runner = web.AppRunner(create_metrics_app(app), access_log=None)
        await metrics_runner.setup()
        runners.append(metrics_runner)
        m_host, m_port = split_host_port(settings.server.metrics_listen)
        await web.TCPSite(metrics_runner, m_host, m_port).start()


def run(loaded: LoadedConfig, config_path: Path) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        asyncio.run(serve(loaded, config_path))
    else:
        uvloop.run(serve(loaded, config_path))
