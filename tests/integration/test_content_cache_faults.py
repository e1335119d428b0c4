"""The content cache when things go wrong: an upstream that lies about digests, Redis down, a
reload that turns the cache off; and the audit trail of a cached pull."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from support import RedisServer, Upstream, free_port
from support.content_cache import FULL_ACCEPT, cache_config, content_counts, upstream_requests
from support.credentials import basic, write_key
from support.gateway import RunningGateway, running_gateway
from support.security import MANIFEST_TYPE, raw_request, seed_image

ALICE = {**basic("alice"), "Accept": FULL_ACCEPT}


@dataclass
class Liar:
    """A registry that answers every manifest and blob GET with a body that is not the content
    of the digest it names: the gateway relays it (the client checks) and must never keep it."""

    port: int = 0
    truth: bytes = b'{"schemaVersion":2,"truth":true}'
    lie: bytes = b'{"schemaVersion":2,"truth":false}'
    seen: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.truth).hexdigest()

    async def answer(self, request: web.Request) -> web.Response:
        self.seen.append(request.path)
        if request.path == "/v2/":
            return web.json_response({})
        media_type = MANIFEST_TYPE if "/manifests/" in request.path else "application/octet-stream"
        return web.Response(body=self.lie, headers={
            "Content-Type": media_type, "Docker-Content-Digest": self.digest,
            "Etag": f'"{self.digest}"', "Docker-Distribution-Api-Version": "registry/2.0"})


@pytest.fixture
async def liar() -> AsyncIterator[Liar]:
    fake = Liar()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.answer)
    runner = web.AppRunner(app)
    await runner.setup()
    fake.port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", fake.port)
    await site.start()
    yield fake
    await runner.cleanup()


@pytest.fixture
def lied_to(liar: Liar, tmp_path: Path) -> Iterator[RunningGateway]:
    port = free_port()
    config = cache_config(f"http://127.0.0.1:{liar.port}", port)
    with running_gateway(config, tmp_path / "gateway", port) as gateway:
        yield gateway


async def test_a_body_that_does_not_hash_to_its_digest_is_never_cached(
        liar: Liar, lied_to: RunningGateway) -> None:
    paths = [f"/v2/myteam/lie/manifests/{liar.digest}", "/v2/myteam/lie/manifests/v1",
             f"/v2/myteam/lie/blobs/{liar.digest}"]
    for path in paths:
        for _ in range(3):
            answer = await raw_request(lied_to.port, "GET", path, ALICE)
            assert answer.status == 200 and answer.body == liar.lie  # relayed as it came
        assert liar.seen.count(path) == 3, path  # asked every time: nothing was kept
    counts = content_counts(lied_to.url)
    assert counts["hit"] == 0 and counts["miss"] == 9
    assert "does not hash to its digest" in lied_to.log_text()


@pytest.fixture
def alone(registry_upstream: Upstream, redis_server: RedisServer,
          tmp_path: Path) -> Iterator[RunningGateway]:
    port = free_port()
    config = cache_config(registry_upstream.url, port, redis_url=redis_server.url,
                          key_file=write_key(tmp_path / "token.pem"))
    with running_gateway(config, tmp_path / "gateway", port) as gateway:
        yield gateway


async def test_redis_down_serves_digests_per_process_and_resolves_no_tag(
        alone: RunningGateway, registry_upstream: Upstream, redis_server: RedisServer) -> None:
    image = seed_image(registry_upstream.url, "myteam/outage", "v1", "outage")
    by_digest = f"/v2/myteam/outage/manifests/{image.manifest_digest}"
    by_tag = "/v2/myteam/outage/manifests/v1"
    for path in (by_digest, by_tag):
        assert (await raw_request(alone.port, "GET", path, ALICE)).status == 200
    redis_server.stop()
    try:
        before = {p: upstream_requests(registry_upstream, p) for p in (by_digest, by_tag)}
        for _ in range(2):
            assert (await raw_request(alone.port, "GET", by_digest, ALICE)).body == image.manifest
            assert (await raw_request(alone.port, "GET", by_tag, ALICE)).body == image.manifest
        assert upstream_requests(registry_upstream, by_digest) == before[by_digest]
        assert upstream_requests(registry_upstream, by_tag) == before[by_tag] + 2
        # What the rules refuse stays refused, cached or not.
        for who in ({**basic("bob"), "Accept": FULL_ACCEPT}, {"Accept": FULL_ACCEPT}):
            assert (await raw_request(alone.port, "GET", by_digest, who)).status == 401
        deleted = await raw_request(alone.port, "DELETE", by_digest, ALICE)
        assert deleted.status == 202
        assert (await raw_request(alone.port, "GET", by_digest, ALICE)).status == 404
    finally:
        redis_server.start()


async def test_a_cached_pull_is_audited_as_a_pull(
        alone: RunningGateway, registry_upstream: Upstream) -> None:
    image = seed_image(registry_upstream.url, "myteam/audited", "v1", "audited")
    path = f"/v2/myteam/audited/manifests/{image.manifest_digest}"
    ids = []
    for _ in range(2):
        answer = await raw_request(alone.port, "GET", path, ALICE)
        ids.append(answer.header("X-Request-Id"))
    assert content_counts(alone.url)["hit"] == 1
    events = [json.loads(line) for line in alone.log_text().splitlines() if line.startswith("{")]
    for request_id in ids:
        mine = [e for e in events if e.get("request_id") == request_id]
        assert [e["event"] for e in mine] == ["access", "pull"], mine
        access, pull = mine
        assert (access["result"], access["status"], access["bytes"]) == ("allow", 200,
                                                                         len(image.manifest))
        assert (pull["user"], pull["repository"], pull["reference"], pull["bytes"]) == (
            "alice", "myteam/audited", image.manifest_digest, len(image.manifest))


async def test_a_reload_that_turns_the_cache_off_empties_it(
        alone: RunningGateway, registry_upstream: Upstream) -> None:
    image = seed_image(registry_upstream.url, "myteam/reloaded", "v1", "reloaded")
    path = f"/v2/myteam/reloaded/manifests/{image.manifest_digest}"
    for _ in range(2):
        await raw_request(alone.port, "GET", path, ALICE)
    assert content_counts(alone.url)["hit"] == 1
    config = alone.copy_config()
    config["cache"]["manifests"]["enabled"] = False
    alone.reload(config)
    await _until_logged(alone, "reload: config")
    before = upstream_requests(registry_upstream, path)
    for _ in range(2):
        assert (await raw_request(alone.port, "GET", path, ALICE)).body == image.manifest
    assert upstream_requests(registry_upstream, path) == before + 2
    assert content_counts(alone.url)["hit"] == 1
    scraped = await raw_request(alone.port, "GET", "/metrics", {})
    assert b"registry_gateway_content_cache_bytes 0.0" in scraped.body


async def _until_logged(gateway: RunningGateway, text: str, within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if text in gateway.log_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not in the gateway's log")
