"""Server limits, each answered clearly: line, header size and count (aiohttp's parser), the head
deadline and the connection cap (gateway/limits.py), idle keep-alive, upstream timeouts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support import Upstream, free_port
from support.gateway import RunningGateway, running_gateway
from support.metrics import metric_value
from support.security import SERVICE, RawResponse, parse_response, raw_request, security_config, send_raw

LIMITS = {"max_connections": 4, "header_timeout": 1.0, "idle_timeout": 3.0,
          "max_line_size": 1024, "max_field_size": 1024, "max_headers": 16}


@pytest.fixture(scope="module")
def limited(registry_upstream_session: Upstream, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("limited")
    port = free_port()
    config = security_config(registry_upstream_session.url, port, directory / "token.pem")
    config["token"].pop("key_file")
    config["server"]["limits"] = LIMITS
    with running_gateway(config, directory / "gateway", port) as gateway:
        yield gateway


def request(path: str = "/v2/", extra: str = "", keep_alive: bool = False) -> bytes:
    connection = "keep-alive" if keep_alive else "close"
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n{extra}\r\n".encode()


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    response = parse_response(head)
    body = await reader.readexactly(int(response.header("Content-Length") or 0))
    return RawResponse(response.status, response.reason, response.headers, body)


OVERSIZED = {
    "request line": request("/v2/" + "a/" * 600 + "tags/list"),
    "header value": request(extra="X-Big: " + "b" * 2000 + "\r\n"),
    "header name": request(extra="X-" + "n" * 2000 + ": 1\r\n"),
    "header count": request(extra="".join(f"X-H{i}: {i}\r\n" for i in range(40))),
}


@pytest.mark.parametrize("label", list(OVERSIZED))
async def test_oversized_heads_get_a_400(limited: RunningGateway, label: str) -> None:
    answer = await send_raw(limited.port, OVERSIZED[label])
    assert answer is not None and answer.status == 400, (label, answer)
    # Issue 11: in the registry's JSON (the parser's own text quotes the refused bytes).
    assert json.loads(answer.body)["errors"][0]["code"] == "UNSUPPORTED", (label, answer)


async def test_a_client_trickling_its_head_is_cut_off(limited: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
    started = time.monotonic()
    received = asyncio.ensure_future(reader.read(-1))  # read as it comes, before any reset
    writer.write(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
    for i in range(40):  # one header line every 0.2 s, never the blank line
        await asyncio.sleep(0.2)
        if received.done():
            break
        writer.write(f"X-Slow-{i}: y\r\n".encode())
    data = await asyncio.wait_for(received, 5)
    writer.close()
    assert time.monotonic() - started < 3  # a 1 s deadline, not 8 s of trickling
    answer = parse_response(data)
    assert answer.status == 408 and answer.json()["errors"][0]["code"] == "REQUEST_TIMEOUT"


async def test_a_silent_connection_is_closed(limited: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(-1), 5)
    writer.close()
    assert time.monotonic() - started < 3 and parse_response(data).status == 408


async def test_a_slow_but_timely_head_and_idle_keep_alive_are_fine(limited: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
    first = request(keep_alive=True)
    writer.write(first[:10])
    await asyncio.sleep(0.5)
    writer.write(first[10:])
    assert (await read_response(reader)).status == 401
    # Idle between requests is the idle timeout's business (3 s), not the head deadline's (1 s).
    await asyncio.sleep(1.8)
    writer.write(request(keep_alive=True))
    assert (await read_response(reader)).status == 401
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(-1), 6) == b""  # closed quietly once idle
    assert 2 < time.monotonic() - started < 5
    writer.close()


async def test_connections_over_the_cap_get_a_503(limited: RunningGateway) -> None:
    held = []
    for _ in range(LIMITS["max_connections"]):
        reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
        writer.write(request(keep_alive=True))
        assert (await read_response(reader)).status == 401
        held.append((reader, writer))
    refused = await send_raw(limited.port, request(), wait=5)
    assert refused is not None and refused.status == 503, refused
    assert refused.header("Retry-After") == "1"
    assert refused.json()["errors"][0]["code"] == "UNAVAILABLE"
    _, writer = held.pop()
    writer.close()
    await asyncio.sleep(0.2)
    # The refusal is counted where an operator looks (once a slot is free to ask /metrics).
    assert metric_value(limited.url, "registry_gateway_connections_refused_total",
                        {"reason": "over_cap"}) == 1
    _, writer = held.pop()
    writer.close()
    deadline = time.monotonic() + 5
    while True:  # the freed slot is usable again
        answer = await send_raw(limited.port, request(), wait=5)
        if answer is not None and answer.status == 401:
            break
        assert time.monotonic() < deadline, answer
        await asyncio.sleep(0.1)
    for _, writer in held:
        writer.close()


@pytest.fixture
async def silent_upstream() -> AsyncIterator[str]:
    """A 'registry' that accepts connections and never answers."""
    hung: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in hung:
        writer.close()
    server.close()


async def test_a_hanging_upstream_times_out_with_504(silent_upstream: str, tmp_path: Path) -> None:
    port = free_port()
    config = security_config(silent_upstream, port, tmp_path / "token.pem")
    config["token"].pop("key_file")
    config["upstream"].update({"connect_timeout": 1, "read_timeout": 1})
    directory = tmp_path / "gateway"
    directory.mkdir()
    gateway = RunningGateway(config, directory, port)
    await asyncio.to_thread(gateway.start)
    try:
        started = time.monotonic()
        answer = await raw_request(port, "GET", "/v2/library/x/tags/list")
        assert answer.status == 504, answer
        assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert time.monotonic() - started < 4
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_a_large_token_form_is_refused(limited: RunningGateway) -> None:
    form = f"grant_type=password&service={SERVICE}&password=" + "p" * 100_000
    answer = await raw_request(limited.port, "POST", "/token",
                               {"Content-Type": "application/x-www-form-urlencoded"},
                               form.encode())
    assert 400 <= answer.status < 500
