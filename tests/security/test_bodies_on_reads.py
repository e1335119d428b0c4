"""Issue 11, defect 1: a GET, HEAD or DELETE that carries a body, and clients that go away.

A request body on a method whose route takes none is either drained and dropped or refused with
a 400 in the registry's JSON; either way the answer comes at once and no upstream connection is
left waiting for bytes that never come. And whatever the route, a client that hangs up before
its answer ends the gateway's exchange with the registry (seen from outside: the registry-side
socket of that exchange is closed by the gateway, tests/support/sockets.py).

The registry here is this module's own: the cancellation tests stop it (SIGSTOP) for a moment.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from support import Upstream, free_port, start_registry, wait_until
from support.credentials import basic_value
from support.gateway import RunningGateway, base_config, running_gateway
from support.security import SeededImage, seed_image
from support.sockets import connections_to, unread_on
from support.wire import Leaver, exchange, is_registry_error, request

ALICE = basic_value("alice")
PROMPT = 3.0  # seconds: a read answered later than this has stalled


@dataclass(frozen=True)
class World:
    upstream: Upstream
    gateway: RunningGateway
    public: SeededImage  # library/tool, anyone may pull
    private: SeededImage  # myteam/app, alice may pull, push and delete
    # A second gateway whose catalog only the leaving test asks for: with no snapshot yet,
    # that request walks the registry and starts the snapshot refresh (both must end).
    unlisted: RunningGateway

    def alice_session(self) -> str:
        """path?query of a new upload session alice opened through the gateway."""
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=10)
        try:
            conn.request("POST", "/v2/myteam/app/blobs/uploads/", b"", {"Authorization": ALICE})
            response = conn.getresponse()
            response.read()
            assert response.status == 202, response.status
            location = urlsplit(response.headers["Location"])
            return f"{location.path}?{location.query}"
        finally:
            conn.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("bodies")
    upstream = start_registry(directory / "registry")
    try:
        public = seed_image(upstream.url, "library/tool", "1", "bodies")
        private = seed_image(upstream.url, "myteam/app", "1", "bodies")
        port, other = free_port(), free_port()
        with running_gateway(base_config(upstream.url, port), directory / "gateway",
                             port) as gateway, \
                running_gateway(base_config(upstream.url, other), directory / "unlisted",
                                other) as unlisted:
            yield World(upstream, gateway, public, private, unlisted)
    finally:
        upstream.close()


def reads(world: World) -> dict[str, tuple[str, str, list[tuple[str, str]], set[int]]]:
    """label -> (method, target, headers, the statuses the same request without a body gets)."""
    pub = world.public
    alice = [("Authorization", ALICE)]
    return {
        "GET tags": ("GET", "/v2/library/tool/tags/list", [], {200}),
        "GET manifest": ("GET", "/v2/library/tool/manifests/1", [], {200}),
        "HEAD manifest": ("HEAD", "/v2/library/tool/manifests/1", [], {200}),
        "GET blob": ("GET", f"/v2/library/tool/blobs/{pub.layer_digest}", [], {200}),
        "HEAD blob": ("HEAD", f"/v2/library/tool/blobs/{pub.layer_digest}", [], {200}),
        "GET referrers": ("GET", f"/v2/library/tool/referrers/{pub.manifest_digest}", [],
                          {200, 404}),
        "DELETE blob": ("DELETE", "/v2/myteam/app/blobs/sha256:" + "e" * 64, alice, {404}),
        "DELETE manifest": ("DELETE", "/v2/myteam/app/manifests/sha256:" + "e" * 64, alice,
                            {404}),
        "GET upload status": ("GET", world.alice_session(), alice, {204}),
        "GET /v2/": ("GET", "/v2/", alice, {200}),
        "GET catalog": ("GET", "/v2/_catalog", alice, {200}),
        "GET token": ("GET", "/token?service=gateway.test&scope=repository:library/tool:pull",
                      [], {200}),
        "GET ui": ("GET", "/ui/", [], {200}),
    }


# Answered by the gateway itself (or refused before the upstream): these pass today. A chunked
# body passes today too (no Content-Length goes upstream, so the registry waits for nothing).
LOCAL = ("GET /v2/", "GET catalog", "GET token", "GET ui")
FORWARDED = ("GET tags", "GET manifest", "HEAD manifest", "GET blob", "HEAD blob",
             "GET referrers", "DELETE blob", "DELETE manifest", "GET upload status")
CASES = [pytest.param(label, framing, id=f"{label}-{framing}")
         for label in (*FORWARDED, *LOCAL) for framing in ("content-length", "chunked")]


@pytest.mark.parametrize(("label", "framing"), CASES)
async def test_a_read_with_a_body_is_answered_at_once(world: World, label: str,
                                                      framing: str) -> None:
    method, target, headers, normal = reads(world)[label]
    if framing == "chunked":
        data = request(method, target, [*headers, ("Transfer-Encoding", "chunked")],
                       b"4\r\nabcd\r\n0\r\n\r\n")
    else:
        data = request(method, target, headers, b"abcd")
    answer = await exchange(world.gateway.port, data, wait=PROMPT)
    assert answer is not None, f"{label}: no answer within {PROMPT} s"
    # Drained and dropped (the answer it gets without a body), or refused the registry's way.
    assert answer.status in normal or answer.status == 400, (label, answer)
    if answer.status == 400 and method != "HEAD":
        assert is_registry_error(answer), answer


async def test_reads_with_bodies_leave_no_upstream_connection_behind(world: World) -> None:
    gateway = world.gateway
    assert gateway.process is not None
    before = len(connections_to(gateway.process.pid, world.upstream.port))
    for _ in range(5):  # one after the other: a released connection is reused by the next
        await exchange(gateway.port, request("GET", "/v2/library/tool/tags/list", [], b"abcd",
                                             close=False), wait=1.0)
    await asyncio.sleep(0.5)
    after = len(connections_to(gateway.process.pid, world.upstream.port))
    assert after <= before + 1, f"{after - before} upstream connections held after 5 requests"


def leaving_requests(world: World) -> dict[str, bytes]:
    pub = world.public
    alice = [("Authorization", ALICE)]
    return {
        "GET manifest": request("GET", "/v2/library/tool/manifests/1"),
        "HEAD manifest": request("HEAD", "/v2/library/tool/manifests/1"),
        "GET blob (spliced)": request("GET", f"/v2/library/tool/blobs/{pub.layer_digest}"),
        "GET tags": request("GET", "/v2/library/tool/tags/list"),
        "GET catalog": request("GET", "/v2/_catalog", alice),
        "POST upload": request("POST", "/v2/myteam/app/blobs/uploads/", alice, length=True),
        "PATCH upload": request("PATCH", world.alice_session(),
                                [*alice, ("Content-Type", "application/octet-stream")], b"x" * 10),
        "ui repository page": request("GET", "/ui/repositories/library/tool"),
    }


LEAVING = ["GET manifest", "HEAD manifest", "GET blob (spliced)", "GET tags", "GET catalog",
           "POST upload", "PATCH upload", "ui repository page"]


def _pending(port: int) -> list[str]:
    """States of registry-side sockets holding a request the (stopped) registry has not read."""
    return [s.state for s in unread_on(port)]


async def _held_by_stopped_registry(world: World, gateway: RunningGateway,
                                    data: bytes) -> Leaver:
    """Stop the registry, send `data` through `gateway`, and return once the gateway has passed
    the request on (a registry-side socket holds it unread).

    That is the setup, not the behaviour under test: a try that does not get there in 15 s (seen
    once in CI, not reproduced since, even on a loaded machine) is reported on stderr and made
    once more; a second miss fails with what the gateway answered and its log.
    """
    upstream_pid = world.upstream.process.pid
    assert upstream_pid is not None
    for attempt in (1, 2):
        client = Leaver(gateway.port, data)
        os.kill(upstream_pid, signal.SIGSTOP)
        await client.send()
        try:
            await asyncio.to_thread(
                wait_until, lambda: "ESTABLISHED" in _pending(world.upstream.port), timeout=15,
                what="the request to reach the registry")
            return client
        except TimeoutError:
            answer = await client.received()
            await client.leave()
            os.kill(upstream_pid, signal.SIGCONT)
            await asyncio.sleep(0.5)
            report = (f"try {attempt}: the request never reached the stopped registry; the "
                      f"gateway answered {answer[:300]!r}; registry-side sockets with unread "
                      f"bytes: {unread_on(world.upstream.port)}; gateway log:\n"
                      f"{gateway.log_tail(8)}")
            if attempt == 2:
                pytest.fail(report)
            print(report, file=sys.stderr)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("label", LEAVING)
async def test_a_client_that_leaves_ends_the_upstream_exchange(world: World, label: str) -> None:
    upstream_pid = world.upstream.process.pid
    assert upstream_pid is not None
    gateway = world.unlisted if label == "GET catalog" else world.gateway
    client = await _held_by_stopped_registry(world, gateway, leaving_requests(world)[label])
    try:
        await client.leave()
        await asyncio.to_thread(
            wait_until, lambda: "ESTABLISHED" not in _pending(world.upstream.port), timeout=3,
            what="the gateway to hang up on the registry after its client left")
    finally:
        await client.leave()  # also when the check failed: no connection outlives the test
        os.kill(upstream_pid, signal.SIGCONT)
        await asyncio.sleep(0.2)  # the registry reads what was waiting, answers, moves on
