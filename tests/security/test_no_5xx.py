"""Issue 11, defect 2: input the gateway should refuse with a 4xx must never make it answer 5xx.

Untrusted bytes reach the gateway in header values (non-Latin-1, raw 0xFF), form bodies (an
unknown charset, bytes that are not UTF-8, a broken multipart body), cookies (a session whose MAC
part is not ASCII, a CSRF cookie of raw 0xFF bytes) and CSRF tokens. Each gets a 4xx (or the
answer it would get without the odd part); and a request head too large for the parser gets a
4xx in the registry's JSON, not aiohttp's plain text.
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlsplit

import pytest
from support import Upstream
from support.credentials import basic_value
from support.gateway import RunningGateway
from support.security import ALL_PASSWORDS, SeededImage, raw_request, seed_image
from support.wire import Answer, Headers, exchange, is_registry_error, request

ALICE = basic_value("alice", ALL_PASSWORDS["alice"])
FORM = "application/x-www-form-urlencoded"
CSRF = "c" * 43  # any cookie of 32..128 characters is taken as the browser's CSRF cookie


@pytest.fixture(scope="module")
def image(registry_upstream_session: Upstream) -> SeededImage:
    return seed_image(registry_upstream_session.url, "myteam/no5xx", "1", "no5xx")


@pytest.fixture
async def session_path(shared_gateway: RunningGateway) -> str:
    """An upload session alice opened through the gateway (path?query)."""
    started = await raw_request(shared_gateway.port, "POST", "/v2/myteam/no5xx/blobs/uploads/",
                                {"Authorization": ALICE})
    assert started.status == 202, started
    location = urlsplit(started.header("Location") or "")
    return f"{location.path}?{location.query}"


async def answer_to(gateway: RunningGateway, data: bytes) -> Answer:
    answer = await exchange(gateway.port, data, wait=10)
    assert answer is not None, "no answer"
    return answer


def assert_refused_or_served(answer: Answer, served: set[int]) -> None:
    assert answer.status < 500, answer
    assert answer.status in served or 400 <= answer.status < 500, answer


# --- header values that are not Latin-1 ---------------------------------------------------

ODD_VALUES = {"utf-8 euro": "€".encode(), "raw ff fe": b"\xff\xfe", "utf-8 in the middle":
              b"a \xe2\x82\xac b"}


def header_routes(image: SeededImage, session: str) -> dict[str, tuple[str, str, bytes, set[int]]]:
    """label -> (method, target, body, statuses it gets without the odd header)."""
    return {
        "GET blob (spliced)": ("GET", f"/v2/myteam/no5xx/blobs/{image.layer_digest}", b"", {200}),
        "HEAD blob": ("HEAD", f"/v2/myteam/no5xx/blobs/{image.layer_digest}", b"", {200}),
        "GET manifest": ("GET", "/v2/myteam/no5xx/manifests/1", b"", {200}),
        "GET tags": ("GET", "/v2/myteam/no5xx/tags/list", b"", {200}),
        "PATCH upload": ("PATCH", session, b"abc", {202}),
        "GET /v2/": ("GET", "/v2/", b"", {200}),
        "GET catalog": ("GET", "/v2/_catalog", b"", {200}),
        "GET token": ("GET", "/token?service=gateway.test", b"", {200}),
        "GET ui": ("GET", "/ui/", b"", {200}),
    }


HEADER_CASES = [
    pytest.param(route, value, id=f"{route}-{value}")
    for route in ("GET blob (spliced)", "HEAD blob", "GET manifest", "GET tags", "PATCH upload",
                  "GET /v2/", "GET catalog", "GET token", "GET ui")
    for value in ODD_VALUES
]


@pytest.mark.parametrize(("route", "value"), HEADER_CASES)
async def test_a_header_value_that_is_not_latin1(shared_gateway: RunningGateway,
                                                 image: SeededImage, session_path: str,
                                                 route: str, value: str) -> None:
    method, target, body, served = header_routes(image, session_path)[route]
    headers: Headers = [("Authorization", ALICE), ("X-Note", ODD_VALUES[value]),
                        ("Content-Type", "application/octet-stream")]
    answer = await answer_to(shared_gateway, request(method, target, headers, body))
    assert_refused_or_served(answer, served)


# --- form bodies ----------------------------------------------------------------------------

BODIES: dict[str, tuple[str, bytes]] = {
    "charset=foo": (f"{FORM}; charset=foo", b"grant_type=password&username=alice&password=x"),
    "charset=utf-16": (f"{FORM}; charset=utf-16", b"grant_type=password&username=alice"),
    "raw 0xFF": (FORM, b"grant_type=password&username=\xff\xfe&password=\xff"),
    "broken multipart": ("multipart/form-data; boundary=x",
                         b"--x\r\nContent-Disposition: form-data; name\xff=\"a\r\n\r\nb\r\n--x--"),
    "multipart without boundary": ("multipart/form-data", b"--x\r\n\r\n--x--\r\n"),
    "multipart, no header end": ("multipart/form-data; boundary=x", b"--x\r\nA: b\r\n"),
}


@pytest.mark.parametrize("label", list(BODIES))
async def test_post_token_with_an_odd_form(shared_gateway: RunningGateway, label: str) -> None:
    content_type, body = BODIES[label]
    answer = await answer_to(shared_gateway, request("POST", "/token",
                                                     [("Content-Type", content_type)], body))
    assert 400 <= answer.status < 500, answer
    assert is_registry_error(answer), answer


@pytest.mark.parametrize("path", ["/ui/login", "/ui/logout"])
@pytest.mark.parametrize("label", list(BODIES))
async def test_ui_post_with_an_odd_form(shared_gateway: RunningGateway, label: str,
                                        path: str) -> None:
    content_type, body = BODIES[label]
    headers: Headers = [("Content-Type", content_type), ("Cookie", f"rg_csrf={CSRF}")]
    answer = await answer_to(shared_gateway, request("POST", path, headers, body))
    assert 400 <= answer.status < 500, answer


# --- CSRF tokens and cookies ------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    pytest.param("é" * 43, id="non-ascii"),
    pytest.param("%FF%FE" * 8, id="escaped 0xFF (decoded as U+FFFD)"),
    pytest.param("x" * 43, id="ascii, wrong"),
])
@pytest.mark.parametrize("path", ["/ui/login", "/ui/logout"])
async def test_a_csrf_token_that_is_not_ascii(shared_gateway: RunningGateway, token: str,
                                              path: str) -> None:
    body = f"username=alice&password={ALL_PASSWORDS['alice']}&csrf_token={token}".encode()
    headers: Headers = [("Content-Type", FORM), ("Cookie", f"rg_csrf={CSRF}")]
    answer = await answer_to(shared_gateway, request("POST", path, headers, body))
    assert answer.status == 403, answer  # a forged form, as any wrong token


def session_cookie(subject: str, mac: bytes) -> bytes:
    """A session cookie for `subject` whose payload parses, with the MAC part given."""
    payload = {"sub": subject, "sid": "0" * 32, "exp": int(time.time()) + 3600}
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=")
    return b"rg_session=" + encoded + b"." + mac


@pytest.mark.parametrize("mac", [
    pytest.param("é".encode() * 22, id="utf-8 e-acute"),
    pytest.param(b"\xff" * 43, id="raw 0xFF"),
    pytest.param(b"A" * 43, id="ascii, wrong"),
])
@pytest.mark.parametrize("page", ["/ui/", "/ui/access", "/ui/repositories/myteam/no5xx",
                                  "/ui/login"])
async def test_a_session_cookie_whose_mac_is_not_ascii(shared_gateway: RunningGateway, mac: bytes,
                                                       page: str) -> None:
    answer = await answer_to(shared_gateway,
                             request("GET", page, [("Cookie", session_cookie("alice", mac))]))
    assert answer.status in (200, 404), answer  # as anonymous; the bad session is dropped
    assert "Signed in as alice" not in answer.body.decode(errors="replace")


@pytest.mark.parametrize(("method", "page"), [
    ("GET", "/ui/"),
    ("GET", "/ui/login"),
    ("GET", "/ui/repositories/library/none"),
    ("POST", "/ui/login"),
])
async def test_a_csrf_cookie_of_raw_bytes(shared_gateway: RunningGateway, method: str,
                                          page: str) -> None:
    headers: Headers = [("Cookie", b"rg_csrf=" + b"\xff" * 40), ("Content-Type", FORM)]
    body = b"username=alice&password=x&csrf_token=" + b"A" * 43 if method == "POST" else b""
    answer = await answer_to(shared_gateway, request(method, page, headers, body))
    assert answer.status < 500, answer
    if method == "POST":
        assert answer.status == 403, answer


# --- request heads too large for the parser ---------------------------------------------------

HEADS = {
    "request line": request("GET", "/v2/myteam/app/tags/list?x=" + "a" * 9000),
    "one header": request("GET", "/v2/", [("X-Big", "a" * 9000)]),
    "authorization header": request("GET", "/v2/myteam/app/tags/list",
                                    [("Authorization", "Bearer " + "a" * 9000)]),
    "many headers": request("GET", "/v2/", [(f"X-H{i}", "v") for i in range(150)]),
    "on /token": request("GET", "/token", [("X-Big", "a" * 9000)]),
}


@pytest.mark.parametrize("label", list(HEADS))
async def test_an_oversized_head_gets_registry_json(shared_gateway: RunningGateway,
                                                    label: str) -> None:
    answer = await answer_to(shared_gateway, HEADS[label])
    assert answer.status in (400, 413, 414, 431), answer
    assert is_registry_error(answer), answer


async def test_an_oversized_authorization_header_stays_out_of_the_log(
        shared_gateway: RunningGateway) -> None:
    secret = base64.b64encode(b"alice:" + ALL_PASSWORDS["alice"].encode() + b"x" * 9000).decode()
    answer = await answer_to(shared_gateway, request("GET", "/v2/",
                                                     [("Authorization", f"Basic {secret}")]))
    assert 400 <= answer.status < 500, answer
    assert secret[:24] not in shared_gateway.log_text()
