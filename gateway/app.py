"""create_app: the one place that wires settings, services, middlewares, routes and cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from gateway.access.decisions import Decider
from gateway.access.service import AccessService
from gateway.access.uploads import UploadGuard
from gateway.audit import AuditLog
from gateway.config.htpasswd import REFUSED_NOTE
from gateway.config.load import LoadedConfig
from gateway.http.errors import SERVER_NAME
from gateway.http.handlers import ops
from gateway.http.handlers.registry import handle_v2
from gateway.http.handlers.token import MAX_FORM_BYTES, handle_token
from gateway.http.limits import CONNECTION_LIMITS, ConnectionLimits, request_phases
from gateway.http.middleware import observe
from gateway.http.services import SERVICES, Services
from gateway.identity.backends import IdentityBackends, LocalAccounts, Mounted
from gateway.identity.cli_tokens import CliPasswords, CliTokens
from gateway.identity.directory import DirectoryClients, DirectoryLogins
from gateway.identity.federation import FederationLogins
from gateway.identity.oidc_registry import OidcRegistry
from gateway.identity.passwords import CredentialCache, PasswordChecker
from gateway.identity.sso_names import SsoNames
from gateway.keys import SigningKey
from gateway.metrics import Metrics
from gateway.runtime.reload import ConfigHolder, watch_file
from gateway.runtime.snapshot import Snapshot, build_snapshot
from gateway.state.content import build_content_cache
from gateway.state.stores import Stores, build_stores, open_stores
from gateway.tokens import TokenAuthority
from gateway.ui.setup import setup_ui
from gateway.upstream.cached import CachedForwarder
from gateway.upstream.catalog import CatalogLister
from gateway.upstream.client import UpstreamClient
from gateway.upstream.forward import Forwarder

log = logging.getLogger("registry_gateway")
EXPIRY_WARNING = timedelta(days=30)


def _signing_key(loaded: LoadedConfig) -> SigningKey:
    if loaded.settings.token.key_file is None:
        log.warning("token.key_file is not set: tokens die with this process")
        return SigningKey.generate()
    return SigningKey.load(loaded.settings.token.key_file)


def _services(loaded: LoadedConfig, config_path: Path, metrics: Metrics,
              stores: Stores, key: SigningKey, directory: DirectoryClients) -> Services:
    settings = loaded.settings
    tokens = TokenAuthority(key, settings.token.service, settings.token.issuer,
                            settings.token.ttl, settings.token.refresh_ttl)
    audit = AuditLog(settings.audit.file)
    decider = Decider(stores.decisions, metrics)
    local = LocalAccounts(PasswordChecker(CredentialCache(settings.auth.credential_cache_ttl)))
    oidc, sso_names = OidcRegistry(), SsoNames()
    cli_tokens = CliTokens(key.secret(b"registry-gateway cli password\0"
                                      + settings.token.service.encode()))
    directory_logins = DirectoryLogins(directory, local, metrics, stores.identities)
    identities = IdentityBackends(local, [
        Mounted(FederationLogins(oidc, metrics), frozenset({"token"})),  # contract: at /token
        Mounted(CliPasswords(cli_tokens, sso_names), frozenset({"token", "v2"})),
        directory_logins,  # every other non-local name
    ], rechecks={"sso": sso_names, "directory": directory_logins})
    access = AccessService(tokens, identities, decider, stores.lockout, metrics,
                           audit, key.secret(b"registry-gateway lockout attempt"))
    upstream = UpstreamClient(settings.upstream, metrics)
    forwarder = Forwarder(upstream, settings.server.public_url)
    content = build_content_cache(stores.link, key.secret(b"registry-gateway content cache"))
    return Services(
        holder=ConfigHolder(config_path, build_snapshot(loaded)),
        tokens=tokens,
        access=access,
        uploads=UploadGuard(stores.uploads, decider),
        upstream=upstream,
        forwarder=forwarder,
        content=CachedForwarder(forwarder, content, metrics),
        catalog=CatalogLister(upstream),
        metrics=metrics,
        audit=audit,
        realm=settings.server.public_url + "/token",
        oidc=oidc,
        cli_tokens=cli_tokens,
        sso_names=sso_names,
    )


def create_app(loaded: LoadedConfig, config_path: Path) -> web.Application:
    """The gateway as an aiohttp application; nothing runs until it is started."""
    settings = loaded.settings
    metrics = Metrics()
    key = _signing_key(loaded)
    stores = build_stores(settings.cache, metrics, key.secret(b"registry-gateway decision cache"),
                          key.secret(b"registry-gateway directory identities"))
    directory = DirectoryClients()  # lives as long as the app; rebuilt when its config changes
    directory.configure(settings)
    services = _services(loaded, config_path, metrics, stores, key, directory)
    services.holder.on_change(lambda new: directory.configure(new.settings))
    services.holder.on_change(lambda new: _observe_config(metrics, new))
    services.holder.on_change(lambda new: services.oidc.configure(new.settings))
    _observe_config(metrics, services.holder.current)

    app = web.Application(middlewares=[request_phases, observe], client_max_size=MAX_FORM_BYTES)
    app[SERVICES] = services
    app[CONNECTION_LIMITS] = ConnectionLimits(settings.server.limits, metrics)
    app.on_response_prepare.append(_quiet_server_header)
    app.cleanup_ctx.append(_upstream_session)
    app.cleanup_ctx.append(_stores_context(stores))
    app.cleanup_ctx.append(_directory_context(directory))
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


def _directory_context(
        directory: DirectoryClients) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        yield
        await directory.close()
    return context


async def _quiet_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Name the product, never its versions (aiohttp would say `Python/3.11 aiohttp/3.x`)."""
    response.headers["Server"] = SERVER_NAME


def create_metrics_app(app: web.Application) -> web.Application:
    """/metrics alone, for `server.metrics_listen`."""
    metrics_app = web.Application()
    metrics_app.on_response_prepare.append(_quiet_server_header)
    metrics_app[SERVICES] = app[SERVICES]
    metrics_app.router.add_get("/metrics", ops.metrics)
    return metrics_app


def _observe_config(metrics: Metrics, snapshot: Snapshot) -> None:
    """Metrics of the running config; names of accounts near expiry go to the log only."""
    expiring = {a.name: a.expires for a in snapshot.policy.accounts.values()
                if a.expires is not None and not a.disabled}
    metrics.observe_config(snapshot.fingerprint, snapshot.loaded_at, expiring.values())
    refused = [w for w in snapshot.warnings if REFUSED_NOTE in w.message]
    metrics.htpasswd_refused.set(len(refused))
    for warning in refused:  # which lines, whose and why; never the hash
        log.warning("%s", warning)
    now = datetime.now(UTC)
    for name, expires in sorted(expiring.items()):
        if expires <= now:
            log.warning("service account %s expired at %s", name, expires.isoformat())
        elif expires - now <= EXPIRY_WARNING:
            log.warning("service account %s expires at %s", name, expires.isoformat())


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    await services.upstream.open()
    yield
    await services.catalog.close()
    await services.upstream.close()
    await services.oidc.close()
    services.audit.close()


def _stores_context(stores: Stores) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_stores(stores):
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
