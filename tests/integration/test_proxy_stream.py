"""Bodies through the proxy's paths: small (read whole), streamed, and spliced blob GETs.

Blob GETs go socket to socket with splice(2) (gateway/zerocopy.py); these tests pin what a client
sees on that path: exact bytes, ranges, framing on a kept-alive connection, error answers, and a
client that leaves mid-body.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import socket
from typing import Any

import aiohttp
import pytest
from support import Upstream
from support.credentials import basic, bearer
from support.gateway import RunningGateway
from support.http_api import get_token, push_blob
from support.metrics import metric_value

REPOSITORY = "myteam/stream"
MiB = 1024 * 1024


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as client:  # keep-alive on: framing must hold
        yield client


async def alice_bearer(session: aiohttp.ClientSession, gateway: RunningGateway) -> dict[str, str]:
    return bearer(await get_token(session, gateway, "alice", f"repository:{REPOSITORY}:pull,push"))


async def push_direct(session: aiohttp.ClientSession, upstream: Upstream, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    async with session.post(f"{upstream.url}/v2/{REPOSITORY}/blobs/uploads/") as response:
        location = response.headers["Location"]
    # A file-like body: aiohttp warns (an error here) on raw bytes over 1 MiB.
    async with session.put(f"{location}&digest={digest}", data=io.BytesIO(data)) as response:
        assert response.status == 201, await response.text()
    return digest


async def get_blob(session: aiohttp.ClientSession, gateway: RunningGateway, digest: str,
                   headers: dict[str, str]) -> tuple[int, Any, bytes]:
    async with session.get(f"{gateway.url}/v2/{REPOSITORY}/blobs/{digest}",
                           headers=headers) as response:
        return response.status, response.headers, await response.read()


async def test_large_blob_arrives_intact_and_framed(
        session: aiohttp.ClientSession, gateway: RunningGateway,
        registry_upstream: Upstream) -> None:
    data = os.urandom(3 * MiB + 12345)
    digest = await push_direct(session, registry_upstream, data)
    auth = await alice_bearer(session, gateway)
    for _ in range(2):  # twice on one kept-alive connection, then a small answer on it too
        status, headers, body = await get_blob(session, gateway, digest, auth)
        assert status == 200
        assert body == data
        assert headers["Content-Length"] == str(len(data))
        assert headers["Docker-Content-Digest"] == digest
        assert headers["Docker-Distribution-API-Version"] == "registry/2.0"
    async with session.get(f"{gateway.url}/v2/", headers=auth) as response:
        assert response.status == 200


async def test_large_range_is_spliced_with_its_status(
        session: aiohttp.ClientSession, gateway: RunningGateway,
        registry_upstream: Upstream) -> None:
    data = os.urandom(4 * MiB)
    digest = await push_direct(session, registry_upstream, data)
    auth = await alice_bearer(session, gateway)
    spliced = metric_value(gateway.url, "registry_gateway_spliced_responses_total")
    status, headers, body = await get_blob(
        session, gateway, digest, {**auth, "Range": f"bytes={MiB}-{3 * MiB - 1}"})
    assert status == 206
    assert body == data[MiB:3 * MiB]
    assert headers["Content-Range"] == f"bytes {MiB}-{3 * MiB - 1}/{len(data)}"
    # The kernel moved the body: this answer took the spliced path, not the ordinary one.
    assert metric_value(gateway.url, "registry_gateway_spliced_responses_total") == spliced + 1


async def test_small_blob_and_missing_blob(
        session: aiohttp.ClientSession, gateway: RunningGateway,
        registry_upstream: Upstream) -> None:
    data = os.urandom(1000)
    digest = await push_direct(session, registry_upstream, data)
    auth = await alice_bearer(session, gateway)
    status, _, body = await get_blob(session, gateway, digest, auth)
    assert (status, body) == (200, data)
    missing = "sha256:" + "0" * 64
    status, headers, body = await get_blob(session, gateway, missing, auth)
    assert status == 404
    assert b"BLOB_UNKNOWN" in body
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_head_keeps_the_length_and_sends_no_body(
        session: aiohttp.ClientSession, gateway: RunningGateway,
        registry_upstream: Upstream) -> None:
    data = os.urandom(2 * MiB)
    digest = await push_direct(session, registry_upstream, data)
    auth = await alice_bearer(session, gateway)
    async with session.head(f"{gateway.url}/v2/{REPOSITORY}/blobs/{digest}",
                            headers=auth) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(data))
        assert await response.read() == b""


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_client_leaving_mid_blob_leaves_nothing_behind(
        session: aiohttp.ClientSession, gateway: RunningGateway,
        registry_upstream: Upstream) -> None:
    data = os.urandom(64 * MiB)
    digest = await push_direct(session, registry_upstream, data)
    auth = await alice_bearer(session, gateway)
    assert gateway.process is not None
    pid = gateway.process.pid
    before = _open_fds(pid)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            request = (f"GET /v2/{REPOSITORY}/blobs/{digest} HTTP/1.1\r\n"
                       f"Host: {gateway.host}\r\nAuthorization: {auth['Authorization']}\r\n\r\n")
            sock.sendall(request.encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    # The gateway notices, closes the upstream socket, pipe and descriptor it held, and serves on.
    for _ in range(100):
        if _open_fds(pid) <= before:
            break
        await asyncio.sleep(0.1)
    assert _open_fds(pid) <= before
    status, _, body = await get_blob(session, gateway, digest, auth)
    assert status == 200 and hashlib.sha256(body).hexdigest() == digest.split(":")[1]


async def test_large_push_streams_and_is_audited(
        session: aiohttp.ClientSession, gateway: RunningGateway) -> None:
    data = os.urandom(5 * MiB)
    auth = basic("alice")
    digest = await push_blob(session, gateway, REPOSITORY, data, auth)
    status, _, body = await get_blob(session, gateway, digest, auth)
    assert (status, body == data) == (200, True)
    assert f'"bytes":{len(data)}' in gateway.log_text()
