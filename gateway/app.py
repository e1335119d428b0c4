"""create_app: the one place that wires settings, services, middlewares, routes and cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gateway.access import AccessControl
from gateway.audit import AuditLog
from gateway.authn import CredentialCache, PasswordChecker
from gateway.catalog import CatalogLister
from gateway.config import LoadedConfig
from gateway.handlers import ops
from gateway.handlers.registry import handle_v2
from gateway.handlers.token import handle_token
from gateway.limits import CONNECTION_LIMITS, ConnectionLimits, request_phases
from gateway.metrics import Metrics
from gateway.middleware import observe
from gateway.proxy import Upstream
from gateway.reload import ConfigHolder, watch_file
from gateway.services import SERVICES, Services
from gateway.snapshot import Snapshot, build_snapshot
from gateway.state import SharedState, open_shared_state
from gateway.tokens import SigningKey, TokenAuthority
from gateway.ui import setup_ui

log = logging.getLogger("registry_gateway")
MAX_FORM_BYTES = 64 * 1024


def _signing_key(loaded: LoadedConfig) -> SigningKey:
    if loaded.settings.token.key_file is None:
        log.warning("token.key_file is not set: tokens die with this process")
        return SigningKey.generate()
    return SigningKey.load(loaded.settings.token.key_file)


def create_app(loaded: LoadedConfig, config_path: Path) -> web.Application:
    """The gateway as an aiohttp application; nothing runs until it is started."""
    settings = loaded.settings
    snapshot = build_snapshot(loaded)
    metrics = Metrics()
    key = _signing_key(loaded)
    tokens = TokenAuthority(key, settings.token.service, settings.token.issuer,
                            settings.token.ttl, settings.token.refresh_ttl)
    holder = ConfigHolder(config_path, snapshot)
    shared = SharedState(settings, metrics, key.secret(b"registry-gateway decision cache"))
    access = AccessControl(
        tokens=tokens,
        passwords=PasswordChecker(CredentialCache(settings.auth.credential_cache_ttl)),
        cache=shared.decisions,
        lockout=shared.lockout,
        metrics=metrics,
        attempt_secret=key.secret(b"registry-gateway lockout attempt"),
    )
    upstream = Upstream(settings.upstream, settings.server.public_url, metrics)
    services = Services(
        holder=holder,
        tokens=tokens,
        access=access,
        upstream=upstream,
        catalog=CatalogLister(upstream),
        uploads=shared.uploads,
        metrics=metrics,
        audit=AuditLog(settings.audit.file),
        realm=settings.server.public_url + "/token",
    )
    holder.on_change(lambda new: _observe_config(metrics, new))
    holder.on_change(shared.apply)
    _observe_config(metrics, snapshot)

    app = web.Application(middlewares=[request_phases, observe], client_max_size=MAX_FORM_BYTES)
    app[SERVICES] = services
    app[CONNECTION_LIMITS] = ConnectionLimits(settings.server.limits)
    app.cleanup_ctx.append(_upstream_session)
    app.cleanup_ctx.append(_shared_state(shared))
    app.cleanup_ctx.append(_signals_and_watch)
    app.router.add_route("*", "/token", handle_token)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    if settings.server.metrics_listen is None:
        app.router.add_get("/metrics", ops.metrics)
    app.router.add_route("*", "/v2", handle_v2)
    app.router.add_route("*", r"/v2/{tail:.*}", handle_v2)
    if settings.ui.enabled:
        setup_ui(app, settings)
    return app


def create_metrics_app(app: web.Application) -> web.Application:
    """/metrics alone, for `server.metrics_listen`."""
    metrics_app = web.Application()
    metrics_app[SERVICES] = app[SERVICES]
    metrics_app.router.add_get("/metrics", ops.metrics)
    return metrics_app


def _observe_config(metrics: Metrics, snapshot: Snapshot) -> None:
    expiries = {a.name: a.expires for a in snapshot.policy.accounts.values()
                if a.kind == "service"}
    metrics.observe_config(snapshot.fingerprint, snapshot.loaded_at, expiries)


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    await services.upstream.open()
    yield
    await services.catalog.close()
    await services.upstream.close()
    services.audit.close()


def _shared_state(shared: SharedState):  # type: ignore[no-untyped-def]
    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_shared_state(shared):
            yield

    return context


async def reload_config(services: Services) -> bool:
    result = await services.holder.reload()
    services.metrics.observe_reload(result.ok)
    return result.ok


async def _signals_and_watch(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        task = loop.create_task(reload_config(services))
        pending.add(task)
        task.add_done_callback(pending.discard)

    # RuntimeError: not the main thread (an app embedded in tests); reloads then need a restart.
    with contextlib.suppress(RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        loop.add_signal_handler(signal.SIGUSR1, services.audit.reopen)
    watcher = loop.create_task(watch_file(services.holder, on_hup))
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    with contextlib.suppress(RuntimeError):
        loop.remove_signal_handler(signal.SIGHUP)
        loop.remove_signal_handler(signal.SIGUSR1)
