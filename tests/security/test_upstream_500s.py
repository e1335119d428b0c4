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
PASSES_500 = pytest.mark.xfail(strict=True, reason="issue 11 (sibling): distribution's 500 "
                                                   "UNKNOWN is passed through unchanged")
BREAKS_502 = pytest.mark.xfail(strict=True, reason="issue 11 (sibling): distribution's short "
                                                   "error body for a bad Range becomes a 502")


@pytest.mark.parametrize("method", [pytest.param("GET", marks=PASSES_500),
                                    pytest.param("HEAD", marks=PASSES_500)])
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
    pytest.param("bytes=1000-2000", marks=BREAKS_502),
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
