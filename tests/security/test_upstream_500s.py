"""Issue 11, siblings of defect 3: well-formed requests by callers who hold the action, which
distribution 2.8.2 answers with a 5xx (or a response it cannot frame), must reach the client as
a 4xx, since the registry is not down (facts in docs/protocol-parity.md):

- a manifest GET/HEAD by the digest of a blob that is not a manifest: 500 UNKNOWN upstream
  (it parses the blob as a manifest), where a 404 MANIFEST_UNKNOWN is the truth;
- a blob GET with a Range header it cannot satisfy or parse: distribution declares the blob's
  Content-Length and then writes a shorter error body, so the gateway reports 502.
"""

from __future__ import annotations

import pytest
from support.credentials import basic
from support.gateway import RunningGateway
from support.security import ALL_PASSWORDS, push_blob, raw_request

ALICE = basic("alice", ALL_PASSWORDS["alice"])
REPO = "myteam/upstream500"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_manifest_read_by_the_digest_of_a_plain_blob(shared_gateway: RunningGateway,
                                                             method: str) -> None:
    digest = await push_blob(shared_gateway.port, REPO, b"not a manifest at all", ALICE)
    answer = await raw_request(shared_gateway.port, method, f"/v2/{REPO}/manifests/{digest}",
                               ALICE)
    assert answer.status == 404, answer
    if method == "GET":
        assert answer.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN", answer


@pytest.mark.parametrize("value", [
    "bytes=abc",
    "bytes=5-1",
    "items=0-1",
    "bytes=1000-2000",
    "bytes=0-3",
    "bytes=-3",
])
async def test_a_blob_get_with_an_odd_range(shared_gateway: RunningGateway, value: str) -> None:
    data = b"sixteen bytes..."
    digest = await push_blob(shared_gateway.port, REPO, data, ALICE)
    answer = await raw_request(shared_gateway.port, "GET", f"/v2/{REPO}/blobs/{digest}",
                               {**ALICE, "Range": value})
    assert answer.status < 500, answer
    if answer.status in (200, 206):
        assert answer.body in (data, data[:4], data[-3:]), answer


# Both framings distribution can get wrong: a small blob (read whole), a large one (spliced);
# a GET that carries a body never takes the spliced path, so it covers the ordinary one.
@pytest.mark.parametrize(("size", "body"), [(16, b""), (100_000, b""), (16, b"x"),
                                            (100_000, b"x")])
async def test_a_range_past_the_end_is_a_416_the_gateway_frames(shared_gateway: RunningGateway,
                                                                 size: int, body: bytes) -> None:
    data = bytes(range(256)) * (size // 256) + b"." * (size % 256)
    digest = await push_blob(shared_gateway.port, REPO, data, ALICE)
    path = f"/v2/{REPO}/blobs/{digest}"
    answer = await raw_request(shared_gateway.port, "GET", path,
                               {**ALICE, "Range": f"bytes={size + 10}-{size + 20}"}, body)
    assert answer.status == 416, answer
    assert answer.header("Content-Range") == f"bytes */{size}", answer
    assert answer.json()["errors"][0]["code"] == "RANGE_INVALID", answer
    again = await raw_request(shared_gateway.port, "GET", path, {**ALICE, "Range": "bytes=0-3"})
    assert (again.status, again.body) == (206, data[:4]), again
