"""A fixed corpus of malformed requests, sent byte for byte: each gets a 4xx, never a 5xx.

Raw sockets, because aiohttp's client (like most) would normalise the very paths under test.
A few entries are well-formed enough to deserve a 200 (an anonymous token for nonsense scopes,
a clamped catalog page): they are marked, and still must not be a 5xx.
"""

from __future__ import annotations

import base64

import pytest
from support.credentials import basic_value
from support.gateway import RunningGateway
from support.security import ALL_PASSWORDS, SERVICE, send_raw

DIGEST = "sha256:" + "a" * 64
ALICE = basic_value("alice", ALL_PASSWORDS["alice"])


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def req(method: str, target: str | bytes, *headers: str, body: bytes = b"",
        version: str = "HTTP/1.1") -> bytes:
    raw_target = target if isinstance(target, bytes) else target.encode("latin-1")
    lines = [method.encode() + b" " + raw_target + b" " + version.encode(), b"Host: gw",
             b"Connection: close", *(h.encode("latin-1") for h in headers)]
    if body and not any(h.lower().startswith(("content-length", "transfer-encoding"))
                        for h in headers):
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def authorized(method: str, target: str | bytes, *headers: str, body: bytes = b"") -> bytes:
    return req(method, target, f"Authorization: {ALICE}", *headers, body=body)


TAGS = "/v2/myteam/app/tags/list"
CORPUS: dict[str, bytes] = {
    # Authorization headers
    "basic, not base64": req("GET", TAGS, "Authorization: Basic !!!notbase64"),
    "basic, empty": req("GET", "/v2/", "Authorization: Basic "),
    "basic, only a colon": req("GET", "/v2/", "Authorization: Basic Og=="),
    "basic, no colon": req("GET", TAGS, f"Authorization: Basic {b64(b'alice')}"),
    "basic, not utf-8": req("GET", TAGS, f"Authorization: Basic {b64(bytes([255, 58, 254]))}"),
    "basic, NUL in user": req("GET", "/token", "Authorization: Basic " + b64(b"al\x00ice:x")),
    "basic, 5 KB password": req("GET", "/token",
                                "Authorization: Basic " + b64(b"alice:" + b"x" * 5000)),
    "basic, token endpoint, not base64": req("GET", "/token", "Authorization: Basic %%%"),
    "bearer, empty": req("GET", TAGS, "Authorization: Bearer "),
    "bearer, bare word": req("GET", TAGS, "Authorization: Bearer"),
    "bearer, two words": req("GET", TAGS, "Authorization: Bearer a b"),
    "bearer, dots": req("GET", TAGS, "Authorization: Bearer ..."),
    "bearer, latin-1": req("GET", TAGS, "Authorization: Bearer \xe9\xe9"),
    "bearer, json": req("GET", TAGS, 'Authorization: Bearer {"alg":"none"}'),
    "bearer on the token endpoint": req("GET", "/token", "Authorization: Bearer abc"),
    "other scheme": req("GET", TAGS, "Authorization: Negotiate abc"),
    "two authorization headers": req("GET", TAGS, f"Authorization: {ALICE}",
                                     "Authorization: Bearer x"),
    # Scopes and token parameters
    "scope of colons": req("GET", "/token?scope=repository:::::"),
    "scope with many colons": req("GET", "/token?scope=repository:a:b:c:d:pull"),
    "scope, 100 entries": req("GET", "/token?scope=" + "+".join(["repository:a:pull"] * 100)),
    "scope, past the line limit": req("GET", "/token?scope=" + "+".join(["repository:a:pull"] * 500)),
    "scope, uppercase": req("GET", "/token?scope=repository:Team/App:pull"),
    "scope, dot segments": req("GET", "/token?scope=repository:a/../b:pull"),
    "scope, NUL": req("GET", "/token?scope=repository:a%00:pull"),
    "scope, star alone": req("GET", "/token?scope=*"),
    "scope, unknown type": req("GET", "/token?scope=magic:a:pull"),
    "scope, 300-char name": req("GET", "/token?scope=repository:" + "a" * 300 + ":pull"),
    "another service": req("GET", "/token?service=evil.example"),
    "POST token, json": req("POST", "/token", "Content-Type: application/json", body=b"{}"),
    "POST token, multipart": req("POST", "/token", "Content-Type: multipart/form-data; boundary=x",
                                 body=b"--x--\r\n"),
    "POST token, no grant": req("POST", "/token", "Content-Type: application/x-www-form-urlencoded",
                                body=b"service=" + SERVICE.encode()),
    "POST token, bad escapes": req("POST", "/token", "Content-Type: application/x-www-form-urlencoded",
                                   body=b"grant_type=password&username=%%%&password=%zz"),
    "POST token, no username": req("POST", "/token", "Content-Type: application/x-www-form-urlencoded",
                                   body=b"grant_type=password&password=x"),
    "POST token, refresh garbage": req("POST", "/token",
                                       "Content-Type: application/x-www-form-urlencoded",
                                       body=b"grant_type=refresh_token&refresh_token=a.b.c"),
    "POST token, 200 KB": req("POST", "/token", "Content-Type: application/x-www-form-urlencoded",
                              body=b"a=" + b"b" * 200_000),
    "DELETE token": req("DELETE", "/token"),
    # Catalog paging
    "huge n": req("GET", "/v2/_catalog?n=" + "9" * 3000),
    "negative n": req("GET", "/v2/_catalog?n=-5"),
    "float n": req("GET", "/v2/_catalog?n=1e9"),
    "hex n": req("GET", "/v2/_catalog?n=0x10"),
    "odd last": req("GET", "/v2/_catalog?last=%ff%fe%00"),
    "long last": req("GET", "/v2/_catalog?last=" + "z" * 4000),
    "catalog, trailing slash": req("GET", "/v2/_catalog/"),
    "catalog, PUT": req("PUT", "/v2/_catalog", body=b"{}"),
    # Methods
    "unknown method": req("BREW", "/v2/"),
    "unknown method on a repository": authorized("PROPFIND", TAGS),
    "TRACE": req("TRACE", "/v2/"),
    "OPTIONS": req("OPTIONS", TAGS),
    "OPTIONS *": req("OPTIONS", "*"),
    "CONNECT": req("CONNECT", "127.0.0.1:5000"),
    "lowercase method": req("get", "/v2/"),
    "DELETE tags": authorized("DELETE", TAGS),
    "POST a manifest": authorized("POST", "/v2/myteam/app/manifests/latest"),
    "PATCH a blob": authorized("PATCH", f"/v2/myteam/app/blobs/{DIGEST}"),
    # Digests and references
    "short digest": authorized("GET", "/v2/myteam/app/blobs/sha256:abc"),
    "uppercase digest": authorized("GET", "/v2/myteam/app/blobs/sha256:" + "A" * 64),
    "long digest": authorized("GET", "/v2/myteam/app/blobs/sha256:" + "a" * 65),
    "md5 digest": authorized("GET", "/v2/myteam/app/blobs/md5:" + "a" * 32),
    "sha512 of 64": authorized("GET", "/v2/myteam/app/blobs/sha512:" + "a" * 64),
    "no digest": authorized("GET", "/v2/myteam/app/blobs/"),
    "bad tag": authorized("GET", "/v2/myteam/app/manifests/-tag"),
    "long tag": authorized("GET", "/v2/myteam/app/manifests/" + "t" * 129),
    "empty reference": authorized("GET", "/v2/myteam/app/manifests/"),
    "referrers, not a digest": authorized("GET", "/v2/myteam/app/referrers/latest"),
    "PUT upload, bad digest": authorized("PUT", "/v2/myteam/app/blobs/uploads/abc?digest=nope",
                                         body=b"x"),
    # Upload ids
    "upload id of dots": authorized("GET", "/v2/myteam/app/blobs/uploads/.."),
    "upload id escaped": authorized("GET", "/v2/myteam/app/blobs/uploads/%2e%2e"),
    "upload id with a space": authorized("GET", "/v2/myteam/app/blobs/uploads/a%20b"),
    "upload id, 300 chars": authorized("GET", "/v2/myteam/app/blobs/uploads/" + "u" * 300),
    "upload, unknown id": authorized("PATCH", "/v2/myteam/app/blobs/uploads/0000?_state=x",
                                     "Content-Type: application/octet-stream", body=b"x"),
    "upload, garbage state": authorized("GET", "/v2/myteam/app/blobs/uploads/abcd?_state=%%%"),
    "upload, two states": authorized("GET", "/v2/myteam/app/blobs/uploads/abcd?_state=a&_state=b"),
    "PATCH without an id": authorized("PATCH", "/v2/myteam/app/blobs/uploads/", body=b"x"),
    "upload, form body": authorized("POST", "/v2/myteam/app/blobs/uploads/",
                                    "Content-Type: application/x-www-form-urlencoded",
                                    body=b"mount=x&from=y"),
    # Path tricks
    "dot dot": authorized("GET", "/v2/myteam/../myteam/app/tags/list"),
    "escaped dot dot": authorized("GET", "/v2/myteam/%2e%2e/myteam/app/tags/list"),
    "escaped dot dot, upper": authorized("GET", "/v2/myteam/%2E%2E/myteam/app/tags/list"),
    "escaped slash": authorized("GET", "/v2/myteam%2Fapp/tags/list"),
    "escaped slash, lower": authorized("GET", "/v2/myteam%2fapp/tags/list"),
    "double slash": authorized("GET", "/v2/myteam//app/tags/list"),
    "leading double slash": authorized("GET", "/v2//myteam/app/tags/list"),
    "dot segment": authorized("GET", "/v2/myteam/./app/tags/list"),
    "leading dot segment": authorized("GET", "/v2/./myteam/app/tags/list"),
    "above the root": authorized("GET", "/v2/../v2/myteam/app/tags/list"),
    "uppercase": authorized("GET", "/v2/MyTeam/app/tags/list"),
    "host and port": authorized("GET", "/v2/localhost:5000/app/tags/list"),
    "NUL byte": authorized("GET", b"/v2/myteam/app\x00/tags/list"),
    "escaped NUL": authorized("GET", "/v2/myteam/app%00/tags/list"),
    "newline escaped": authorized("GET", "/v2/myteam/app%0a/tags/list"),
    "tab": authorized("GET", b"/v2/myteam/app\t/tags/list"),
    "backslash": authorized("GET", "/v2/myteam\\app/tags/list"),
    "utf-8 name": authorized("GET", "/v2/t\u00ebam/app/tags/list".encode()),
    "raw high bytes": authorized("GET", b"/v2/myteam/\xff\xfe/tags/list"),
    "overlong name": authorized("GET", "/v2/" + "a" * 256 + "/tags/list"),
    "very long path": authorized("GET", "/v2/" + "a/" * 3000 + "tags/list"),
    "trailing slash": authorized("GET", TAGS + "/"),
    "fragment": authorized("GET", TAGS + "#x"),
    "absolute form": authorized("GET", "http://evil.example/v2/myteam/app/tags/list"),
    "uploads walking up": authorized("GET", "/v2/myteam/app/blobs/uploads/../../manifests/x"),
    "semicolon parameter": authorized("GET", "/v2/myteam/app;x=1/tags/list"),
    "upper V2": authorized("GET", "/V2/myteam/app/tags/list"),
    # Framing
    "negative length": req("POST", "/token", "Content-Length: -1"),
    "non-numeric length": req("POST", "/token", "Content-Length: abc"),
    "length and chunked": req("POST", "/v2/myteam/app/blobs/uploads/", f"Authorization: {ALICE}",
                              "Content-Length: 3", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "bad chunk size": req("PATCH", "/v2/myteam/app/blobs/uploads/abcd", f"Authorization: {ALICE}",
                          "Transfer-Encoding: chunked", body=b"zz\r\nx\r\n0\r\n\r\n"),
    "unknown transfer coding": req("POST", "/token", "Transfer-Encoding: gzip", body=b"x"),
    "header without a colon": req("GET", "/v2/", "NoColonHere"),
    "space before the colon": req("GET", "/v2/", "Authorization : Basic Og=="),
    "HTTP/2.0 line": req("GET", "/v2/", version="HTTP/2.0"),
    "garbage version": req("GET", "/v2/", version="HTTQ/1.1"),
}
OK_200 = {"scope of colons", "scope with many colons", "scope, 100 entries", "scope, uppercase",
          "scope, dot segments", "scope, NUL", "scope, star alone", "scope, unknown type",
          "scope, 300-char name", "huge n", "odd last", "long last"}


@pytest.mark.parametrize("label", list(CORPUS))
async def test_malformed_requests_get_a_4xx(shared_gateway: RunningGateway, label: str) -> None:
    answer = await send_raw(shared_gateway.port, CORPUS[label])
    assert answer is not None, f"{label}: the connection closed without an answer"
    if label in OK_200:
        assert answer.status == 200, (label, answer)
    else:
        assert 400 <= answer.status < 500, (label, answer)


async def test_the_gateway_still_serves_after_the_corpus(shared_gateway: RunningGateway) -> None:
    for data in CORPUS.values():
        await send_raw(shared_gateway.port, data)
    answer = await send_raw(shared_gateway.port, authorized("GET", "/v2/"))
    assert answer is not None and answer.status == 200
    assert "Traceback" not in shared_gateway.log_text(), shared_gateway.log_tail()
