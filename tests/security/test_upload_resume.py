"""Issue 11, defect 3: resumable uploads, and an upstream 500 the gateway must answer as a 4xx.

Reading an upload's status (GET or HEAD on the session: 204 with Range) is how a client resumes;
the session must stay its owner's afterwards, as distribution keeps it. A PATCH whose
Content-Type is not application/octet-stream makes distribution 2.8.2 answer 500 UNKNOWN (see
docs/protocol-parity.md): the gateway answers the owner with a 4xx instead, and the session is
still usable afterwards (or, if the gateway refuses it before forwarding, untouched).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from support.credentials import basic
from support.gateway import RunningGateway
from support.security import ALL_PASSWORDS, RawResponse, digest_of, raw_request

ALICE = basic("alice", ALL_PASSWORDS["alice"])
FRANK = basic("frank", ALL_PASSWORDS["frank"])
OCTETS = {"Content-Type": "application/octet-stream"}


def next_target(answer: RawResponse) -> str:
    location = urlsplit(answer.header("Location") or "")
    assert location.path, answer
    return f"{location.path}?{location.query}"


async def start(gateway: RunningGateway, repo: str) -> str:
    answer = await raw_request(gateway.port, "POST", f"/v2/{repo}/blobs/uploads/", ALICE)
    assert answer.status == 202, answer
    return next_target(answer)


async def patch(gateway: RunningGateway, target: str, data: bytes,
                headers: dict[str, str] | None = None) -> RawResponse:
    return await raw_request(gateway.port, "PATCH", target, {**ALICE, **(headers or OCTETS)}, data)


@pytest.mark.parametrize("status_method", ["GET", "HEAD"])
async def test_an_upload_resumes_after_its_status_was_read(shared_gateway: RunningGateway,
                                                           status_method: str) -> None:
    repo = f"myteam/resume-{status_method.lower()}"
    first, second = b"first half, ", b"second half"
    target = next_target(await patch(shared_gateway, await start(shared_gateway, repo), first))
    status = await raw_request(shared_gateway.port, status_method, target, ALICE)
    assert status.status == 204, status
    assert status.header("Range") == f"0-{len(first) - 1}", status
    resumed = await patch(shared_gateway, next_target(status), second)
    assert resumed.status == 202, resumed
    assert resumed.header("Range") == f"0-{len(first + second) - 1}", resumed
    done = await raw_request(shared_gateway.port, "PUT",
                             f"{next_target(resumed)}&digest={digest_of(first + second)}",
                             {**ALICE, **OCTETS})
    assert done.status == 201, done


async def test_a_status_read_does_not_open_the_session_to_others(
        shared_gateway: RunningGateway) -> None:
    """Whatever the fix keeps, the binding still holds against another pusher (passes today)."""
    target = await start(shared_gateway, "myteam/resume-other")
    assert (await raw_request(shared_gateway.port, "GET", target, ALICE)).status == 204
    stolen = await raw_request(shared_gateway.port, "PATCH", target, {**FRANK, **OCTETS}, b"x")
    assert stolen.status == 404, stolen
    assert stolen.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream; charset=x",
                                          "application/json"])
async def test_a_patch_with_another_content_type_is_a_4xx(shared_gateway: RunningGateway,
                                                          content_type: str) -> None:
    repo = "myteam/resume-ctype"
    target = await start(shared_gateway, repo)
    refused = await patch(shared_gateway, target, b"abc", {"Content-Type": content_type})
    assert 400 <= refused.status < 500, refused
    assert refused.json()["errors"][0]["code"] != "UNKNOWN", refused
    # The owner's session still works afterwards with the right Content-Type.
    ok = await patch(shared_gateway, target, b"abc")
    assert ok.status == 202, ok


async def test_a_patch_without_content_type_is_taken(shared_gateway: RunningGateway) -> None:
    """distribution takes an empty Content-Type; so must the gateway (passes today)."""
    target = await start(shared_gateway, "myteam/resume-noctype")
    answer = await raw_request(shared_gateway.port, "PATCH", target, ALICE, b"abc")
    assert answer.status == 202, answer
