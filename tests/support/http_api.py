"""Calls the HTTP-level integration tests share: a gateway on a free port (with Redis, a key
file or other sections where asked), tokens, blob pushes through the gateway, statuses, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from support import free_port
from support.credentials import basic
from support.gateway import RunningGateway, base_config, running_gateway

SERVICE = "gateway.test"
# Tests that look into Redis give it time on a busy machine; the outage tests set the default
# (tens of ms) back where the timeout is what they test.
TEST_REDIS_TIMEOUT = 0.5


def gateway_config(upstream_url: str, port: int, *, redis_url: str | None = None,
                   key_file: Path | None = None, **sections: Any) -> dict[str, Any]:
    """base_config plus Redis, a key file and any top-level sections to replace."""
    config = base_config(upstream_url, port)
    if redis_url is not None:
        config["cache"]["redis_url"] = redis_url
        config["cache"]["redis_timeout"] = TEST_REDIS_TIMEOUT
    if key_file is not None:
        config["token"]["key_file"] = str(key_file)
    config.update(sections)
    return config


@contextlib.contextmanager
def start_gateway(directory: Path, upstream_url: str,
                  tweak: Callable[[dict[str, Any]], None] | None = None,
                  **options: Any) -> Iterator[RunningGateway]:
    """A gateway on a free port; `tweak` edits its config (listen address included) first."""
    port = free_port()
    config = gateway_config(upstream_url, port, **options)
    if tweak is not None:
        tweak(config)
    with running_gateway(config, directory, port) as gw:
        yield gw


async def metrics(session: aiohttp.ClientSession, gateway: RunningGateway) -> dict[str, float]:
    """Every sample as 'name{label="value",...}' -> value (labels sorted)."""
    async with session.get(f"{gateway.url}/metrics") as response:
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


async def cache_counts(session: aiohttp.ClientSession, gateway: RunningGateway) -> dict[str, float]:
    """registry_gateway_decision_cache_total by result, and the Redis fallbacks by store."""
    samples = await metrics(session, gateway)
    counts = {result: samples[f'registry_gateway_decision_cache_total{{result="{result}"}}']
              for result in ("hit", "miss", "error")}
    for store in ("decisions", "lockout", "uploads"):
        counts[store] = samples.get(f'registry_gateway_state_fallbacks_total{{store="{store}"}}', 0)
    return counts


async def token_answer(session: aiohttp.ClientSession, gateway: RunningGateway,
                       user: str | None, *scopes: str, offline: bool = False) -> dict[str, Any]:
    """The token endpoint's JSON for `user` (None: anonymous); `offline` asks for a refresh token."""
    params = [("service", SERVICE), *(("scope", s) for s in scopes)]
    if offline:
        params += [("offline_token", "true"), ("client_id", "test")]
    headers = basic(user) if user else {}
    async with session.get(f"{gateway.url}/token", params=params, headers=headers) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def get_token(session: aiohttp.ClientSession, gateway: RunningGateway, user: str,
                    *scopes: str) -> str:
    token: str = (await token_answer(session, gateway, user, *scopes))["token"]
    return token


async def push_blob(session: aiohttp.ClientSession, gateway: RunningGateway, repository: str,
                    data: bytes, headers: dict[str, str]) -> str:
    """POST then PUT through the gateway, as docker does; the blob's digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    async with session.post(f"{gateway.url}/v2/{repository}/blobs/uploads/",
                            headers=headers) as response:
        assert response.status == 202, await response.text()
        location = response.headers["Location"]
    assert location.startswith(gateway.url), location
    # A file-like body: aiohttp warns (an error in tests) on raw bytes over 1 MiB.
    async with session.put(f"{location}&digest={digest}", data=io.BytesIO(data),
                           headers={**headers, "Content-Type": "application/octet-stream"}) as r:
        assert r.status == 201, await r.text()
    return digest


async def status(session: aiohttp.ClientSession, gateway: RunningGateway, path: str,
                 headers: dict[str, str], method: str = "GET") -> int:
    async with session.request(method, f"{gateway.url}{path}", headers=headers) as response:
        await response.read()
        return response.status


async def wait_for_status(session: aiohttp.ClientSession, gateway: RunningGateway, path: str,
                          headers: dict[str, str], expected: int, within: float) -> float:
    """Poll until `path` answers `expected`; returns how long that took."""
    started = time.monotonic()
    while True:
        got = await status(session, gateway, path, headers)
        elapsed = time.monotonic() - started
        if got == expected:
            return elapsed
        assert elapsed < within, f"{path} still answers {got} after {elapsed:.2f}s"
        await asyncio.sleep(0.02)


async def until(probe: Callable[[], object], what: str, within: float = 2.0) -> None:
    """Poll a condition the gateway reaches just after it answered (upload bindings are written
    once the upstream's answer has been relayed)."""
    deadline = time.monotonic() + within
    while not probe():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)
