"""The gateways issue 14's rows compare: cache off and cache on, two replicas each, plus TLS.

Every variant is two replicas sharing the stack's Redis and token key (no balancer: the load tool
drives each replica's port with its own wrk). `cache.manifests.enabled` selects the variant; a
gateway that does not know the key refuses the config, which `cache_supported()` finds out with
`check-config` before anything starts, so the bench then runs the cache-off rows only.
A TLS listener per variant (a test certificate) and a TLS registry on the same storage give the
TLS rows their three paths.
"""

from __future__ import annotations

import copy
import os
import re
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from blobs import Endpoint, MiB
from machine import log
from stack import GATEWAY_SRC, Gateway, Stack, gateway_config
from support.procs import ManagedProcess, find_program, free_port
from support.registry import registry_config
from support.tls import TestCertificates, make_certificates

CACHE_MAX_BYTES = 64 * MiB
HIT_SERIES = re.compile(r'^registry_gateway_content_cache_total\{([^}]*)\}\s+(\S+)', re.MULTILINE)
RESULT_LABEL = re.compile(r'(?:^|,)result="(hit|miss)"')


def cache_section(enabled: bool) -> dict[str, Any]:
    return {"manifests": {"enabled": enabled, "max_bytes": CACHE_MAX_BYTES}}


def _check_config(workdir: Path, name: str, config: dict[str, Any],
                  src: Path = GATEWAY_SRC) -> subprocess.CompletedProcess[str]:
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run([sys.executable, "-m", "gateway", "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(src)},
                          cwd=workdir)  # not the checkout: `-m` imports from the cwd first


def cache_supported(stack: Stack, src: Path = GATEWAY_SRC) -> bool:
    """Whether the gateway (of source tree `src`) accepts `cache.manifests`; an error if it
    accepts no config at all."""
    base = gateway_config(stack.upstream.url, free_port(), stack.workdir, stack.redis.url)
    probe = copy.deepcopy(base)
    probe["cache"].update(cache_section(False))
    if _check_config(stack.workdir, "probe-cache", probe, src).returncode == 0:
        return True
    plain = _check_config(stack.workdir, "probe-plain", base, src)
    if plain.returncode != 0:
        raise RuntimeError(f"check-config refuses even the plain bench config:\n{plain.stdout}"
                           f"{plain.stderr}")
    return False


def set_cache(stack: Stack, config: dict[str, Any], enabled: bool,
              src: Path = GATEWAY_SRC) -> str:
    """Put `cache.manifests.enabled` in `config` when the tree `src` knows the key; what the
    gateway then runs with, for the log ("cache off", "cache on" or "no cache")."""
    if not cache_supported(stack, src):
        return "no cache (the tree has no cache.manifests)"
    config["cache"].update(cache_section(enabled))
    return "cache on" if enabled else "cache off"


def baseline_without_cache(stack: Stack, enabled: bool = False) -> None:
    """The first table is the proxied path, as in earlier runs: a gateway that has a content
    cache runs it with `cache.manifests.enabled: false` (its rows repeat one manifest, which a
    cache would answer; issue 14's table measures the cache on a workload made for it).
    `enabled` True (bench/profile.py --with-cache): explicitly on."""
    gateway = stack.gateway
    config = copy.deepcopy(gateway.config)
    state = set_cache(stack, config, enabled, gateway.src)
    if config != gateway.config:
        gateway.stop()
        gateway.config = config
        gateway.start()
    log(f"the gateway ({gateway.name}) runs with {state}")


@dataclass(frozen=True)
class Variant:
    """`name` ("off" or "on"): two replicas, and one more process serving TLS."""

    name: str
    replicas: tuple[Gateway, ...]
    tls: Gateway | None

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(g.pid for g in self.replicas)


def _config(stack: Stack, port: int, cache: bool | None,
            certs: TestCertificates | None) -> dict[str, Any]:
    config = gateway_config(stack.upstream.url, port, stack.workdir, stack.redis.url)
    if cache is not None:  # None: a gateway without the key (today's); it has no cache at all
        config["cache"].update(cache_section(cache))
    if certs is not None:
        config["server"]["tls"] = {"cert": str(certs.server_cert), "key": str(certs.server_key)}
        config["server"]["public_url"] = f"https://127.0.0.1:{port}"
    return config


def start_variants(stack: Stack, cleanup: ExitStack, with_cache: bool,
                   certs: TestCertificates | None, client_tls: ssl.SSLContext | None,
                   replicas: int = 2) -> dict[str, Variant]:
    """"off" always (explicitly disabled when the gateway knows the key), "on" if it does."""
    wanted: list[tuple[str, bool | None]] = [("off", False if with_cache else None)]
    if with_cache:
        wanted.append(("on", True))
    gateways: dict[str, list[Gateway]] = {}
    for name, cache in wanted:
        for i in range(replicas + (1 if certs else 0)):
            port = free_port()
            tls = certs if i == replicas else None
            gateway = Gateway(stack.workdir, port, _config(stack, port, cache, tls),
                              name=f"cache-{name}-{'tls' if tls else i}",
                              tls=client_tls if tls else None)
            gateways.setdefault(name, []).append(gateway)
    every = [g for group in gateways.values() for g in group]
    for gateway in every:
        cleanup.callback(gateway.stop)
    for gateway in every:  # startup is mostly imports: let them boot side by side
        gateway.launch()
    for gateway in every:
        gateway.wait_ready()
    return {name: Variant(name, tuple(group[:replicas]), group[replicas] if certs else None)
            for name, group in gateways.items()}


def cache_counts(gateways: Sequence[Gateway]) -> tuple[float, float] | None:
    """Hits and misses summed over the replicas' /metrics; None when no replica has the family."""
    hits = misses = 0.0
    found = False
    for gateway in gateways:
        for labels, value in HIT_SERIES.findall(gateway.metrics_text()):
            result = RESULT_LABEL.search(labels)
            if result is None:
                continue
            found = True
            if result.group(1) == "hit":
                hits += float(value)
            else:
                misses += float(value)
    return (hits, misses) if found else None


def hit_rate(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    if before is None or after is None:
        return None
    hits, misses = after[0] - before[0], after[1] - before[1]
    return hits / (hits + misses) if hits + misses > 0 else None


class TlsRegistry:
    """A second docker-registry on the stack's storage, serving TLS: the direct TLS path."""

    def __init__(self, workdir: Path, storage: Path, certs: TestCertificates,
                 client: ssl.SSLContext) -> None:
        self.port = free_port()
        self.client = client
        workdir.mkdir(parents=True, exist_ok=True)
        config = registry_config(storage, self.port, access_log=False).replace(
            "http:\n", f"http:\n  tls:\n    certificate: {certs.server_cert}\n"
                       f"    key: {certs.server_key}\n", 1)
        if "  tls:\n" not in config:
            raise RuntimeError("the registry config has no http: section to add TLS to")
        (workdir / "config.yml").write_text(config)
        self.process = ManagedProcess(
            "registry-tls", [find_program("docker-registry"), "serve", str(workdir / "config.yml")],
            log_path=workdir / "registry.log")

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/v2/", timeout=1,
                                    context=self.client) as reply:
            return bool(reply.status == 200)

    def endpoint(self) -> Endpoint:
        assert self.process.pid is not None
        return Endpoint("direct-tls", "127.0.0.1", self.port, None, (self.process.pid,),
                        self.client)


@contextmanager
def tls_registry(stack: Stack) -> Iterator[tuple[TlsRegistry, TestCertificates]]:
    certs = make_certificates(stack.workdir / "tls")
    client = ssl.create_default_context(cafile=str(certs.ca_cert))
    registry = TlsRegistry(stack.workdir / "registry-tls", stack.upstream.root, certs, client)
    registry.process.start()
    try:
        registry.process.wait_ready(registry._ready, timeout=15)
        yield registry, certs
    finally:
        registry.process.stop()
