"""Split a py-spy profile of the gateway's event loop into the parts of a request's CPU.

Each sample (a stack from `py-spy record --format raw`) goes to the innermost frame that belongs
to one of the parts below; frames of shared helpers (aiohttp's writer and streams, multidict,
yarl, json, redis-py, asyncio) take the part of whoever called them, so a `send()` of the
upstream request counts for the client and a `send()` of the answer for the server. What is left, the event
loop's own frames (uvloop: epoll, recv, callbacks), is "event loop". Multiplied by the CPU per
request measured on the same stack without the profiler, each share becomes microseconds.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from pathlib import Path

EVENT_LOOP = "event loop (uvloop: epoll, recv, callbacks)"
OTHER = "other (gc, logging, ...)"
SEND_ANSWER = "send() of the answer to the client (kernel: loopback TCP, wakes the client)"
SEND_REQUEST = "send() of the request to the upstream (kernel: loopback TCP, wakes it)"
CLIENT_PART = "aiohttp client request to upstream"
CLIENT_FILES = ("aiohttp/client.py", "aiohttp/client_reqrep.py", "aiohttp/client_proto.py",
                "aiohttp/connector.py")
# (part, file prefixes or "file:function"); the first match of the innermost frame wins.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("token verify cache", ("gateway/tokens.py", "jwt/", "cryptography/")),
    ("audit write (json + write + flush)", ("gateway/audit.py",)),
    ("metrics labels (prometheus_client)", ("prometheus_client/", "gateway/metrics.py")),
    ("header copying (request and response headers)", tuple(
        f"{module}:{function}" for module in ("gateway/proxy.py", "gateway/upstream/forward.py")
        for function in ("_request_headers", "_response_headers", "rewrite_location"))),
    (CLIENT_PART, (*CLIENT_FILES, "aiohttp/client_exceptions.py", "aiohttp/tracing.py",
                   "aiohttp/cookiejar.py", "gateway/upstream/client.py")),
    ("content cache (lookup, generation read, fill)", (
        "gateway/upstream/cached.py", "gateway/state/content", "gateway/state/generations.py")),
    ("middleware (request id, metrics wrapper, connection guard)", (
        "gateway/middleware.py", "gateway/limits.py", "gateway/http/middleware.py",
        "gateway/http/limits.py")),
    ("access pipeline (route, identify, decide)", (
        # before the layout of issue 10 and after it
        "gateway/access", "gateway/authz.py", "gateway/authn.py", "gateway/cache.py",
        "gateway/redis", "gateway/names.py", "gateway/routes.py", "gateway/scope.py",
        "gateway/handlers/common.py", "gateway/clientaddr.py", "gateway/snapshot.py",
        "gateway/accounts.py", "gateway/credentials.py", "gateway/state", "gateway/stores.py",
        "gateway/policy/", "gateway/identity/", "gateway/http/clientaddr.py",
        "gateway/http/handlers/refusals.py", "gateway/runtime/")),
    ("registry handler and proxy glue (handlers/registry.py, proxy.py)", (
        "gateway/handlers/registry.py", "gateway/proxy.py", "gateway/upstream/",
        "gateway/http/handlers/", "gateway/errors.py", "gateway/http/")),
    ("aiohttp server (parse, dispatch, prepare the answer)", (
        "aiohttp/web_protocol.py", "aiohttp/web_request.py", "aiohttp/web_response.py",
        "aiohttp/web_app.py", "aiohttp/web_urldispatcher.py", "aiohttp/web_server.py",
        "aiohttp/web_middlewares.py", "aiohttp/http_parser.py", "aiohttp/web_exceptions.py")),
)
LOOP_FILES = ("asyncio/", "uvloop/", "gateway/server.py", "gateway/__main__.py", "gateway/cli.py",
              "<frozen runpy>", "runpy.py")


def _where(frame: str) -> tuple[str, str]:
    """'name (path/file.py:123)' -> ('path/file.py', 'name')."""
    name, _, rest = frame.partition(" (")
    return rest.rsplit(":", 1)[0], name.rsplit(".", 1)[-1]


def _send(stack: list[str]) -> str | None:
    """A socket write (aiohttp's StreamWriter calling the transport): whose, by the callers."""
    path, function = _where(stack[-1])
    if not path.endswith("aiohttp/http_writer.py") or function not in ("_write", "_writelines"):
        return None
    client = any(_where(f)[0].endswith(CLIENT_FILES) for f in stack)
    return SEND_REQUEST if client else SEND_ANSWER


def part_of(frames: Iterable[str]) -> str:
    return place(list(frames))[0]


def place(stack: list[str]) -> tuple[str, str]:
    """(part, the frame that decided it) for one sample's stack, outermost frame first."""
    if stack:
        sent = _send(stack)
        if sent is not None:
            return sent, stack[-1]
    for frame in reversed(stack):  # innermost first
        path, function = _where(frame)
        for part, prefixes in PARTS:
            for prefix in prefixes:
                file, _, wanted = prefix.partition(":")
                if f"/{file}" in f"/{path}" and (not wanted or wanted == function):
                    return part, frame
    if all(any(marker in _where(f)[0] for marker in LOOP_FILES) for f in stack):
        return EVENT_LOOP, stack[-1] if stack else ""
    return OTHER, stack[-1] if stack else ""


def split(collapsed: Path) -> tuple[int, collections.Counter[str], collections.Counter[tuple[str, str]]]:
    """Samples of the event-loop thread per part, and per (part, deciding frame without its
    line number); worker threads are left out."""
    parts: collections.Counter[str] = collections.Counter()
    frames_of: collections.Counter[tuple[str, str]] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if any(f.startswith("_bootstrap ") or "Thread._bootstrap" in f for f in frames):
            continue
        count = int(count_text)
        total += count
        part, frame = place(frames)
        parts[part] += count
        name, _, where = frame.partition(" (")
        frames_of[(part, f"{name} ({where.rsplit(':', 1)[0]})")] += count
    return total, parts, frames_of


def table(total: int, parts: collections.Counter[str], cpu_us: float,
          frames_of: collections.Counter[tuple[str, str]] | None = None, top: int = 3) -> str:
    lines = [f"{total} samples of the event loop; {cpu_us:,.0f} us of CPU per request "
             "(measured without the profiler)", "",
             "| part | share of samples | us per request | where (top frames) |",
             "|---|---:|---:|---|"]
    for part, count in parts.most_common():
        share = count / total if total else 0.0
        where = ""
        if frames_of:
            mine = [(f, c) for (p, f), c in frames_of.most_common() if p == part][:top]
            where = "; ".join(f"{f} {100 * c / total:.1f}%" for f, c in mine)
        lines.append(f"| {part} | {100 * share:.1f}% | {share * cpu_us:,.0f} | {where} |")
    return "\n".join(lines)
