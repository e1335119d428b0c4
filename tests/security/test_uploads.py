"""Upload sessions belong to (identity, repository): nobody else may continue, read or cancel one.

alice and frank are both in myteam and may both push myteam/*. frank holding alice's full
Location (uuid and _state) still gets BLOB_UPLOAD_UNKNOWN, byte for byte what an upload id that
never existed gets, and alice's session is intact afterwards.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from support.credentials import basic, bearer
from support.gateway import RunningGateway
from support.security import ALL_PASSWORDS, RawResponse, digest_of, fetch_token, raw_request

ALICE = basic("alice", ALL_PASSWORDS["alice"])
FRANK = basic("frank", ALL_PASSWORDS["frank"])
CAROL = basic("carol", ALL_PASSWORDS["carol"])  # admin
OCTETS = {"Content-Type": "application/octet-stream"}


async def start(gateway: RunningGateway, repo: str, headers: dict[str, str]) -> tuple[str, str]:
    """(uuid, path?query) of a new upload session."""
    answer = await raw_request(gateway.port, "POST", f"/v2/{repo}/blobs/uploads/", headers)
    assert answer.status == 202, answer
    location = urlsplit(answer.header("Location") or "")
    return answer.header("Docker-Upload-UUID") or "", f"{location.path}?{location.query}"


def attempts(session: str, digest: str) -> list[tuple[str, str, bytes]]:
    return [("PATCH", session, b"frank's bytes"), ("PUT", f"{session}&digest={digest}", b"x"),
            ("GET", session, b""), ("HEAD", session, b""), ("DELETE", session, b"")]


async def frank_token(gateway: RunningGateway, repo: str) -> dict[str, str]:
    body = await fetch_token(gateway.port, FRANK, f"repository:{repo}:pull,push")
    return bearer(body["token"])


@pytest.mark.parametrize("intruder", ["frank", "frank token", "carol (admin)"])
async def test_another_pusher_cannot_touch_the_session(shared_gateway: RunningGateway,
                                                       intruder: str) -> None:
    repo = f"myteam/shared-{intruder.split()[0]}-{len(intruder)}"
    uuid, session = await start(shared_gateway, repo, ALICE)
    headers = {"frank": FRANK, "carol (admin)": CAROL}.get(intruder) \
        or await frank_token(shared_gateway, repo)
    data = b"alice's layer"
    for method, target, body in attempts(session, digest_of(data)):
        answer = await raw_request(shared_gateway.port, method, target, {**headers, **OCTETS}, body)
        assert answer.status == 404, (method, answer)
        if method != "HEAD":
            assert answer.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
        # Exactly what an upload id that never existed gets: no oracle about live sessions.
        never = await raw_request(shared_gateway.port, method,
                                  target.replace(uuid, "f" * len(uuid)), {**headers, **OCTETS}, body)
        assert answer.comparable([uuid]) == never.comparable(["f" * len(uuid)])
    # alice's session survived all of it.
    patched = await raw_request(shared_gateway.port, "PATCH", session, {**ALICE, **OCTETS}, data)
    assert patched.status == 202, patched
    location = urlsplit(patched.header("Location") or "")
    done = await raw_request(shared_gateway.port, "PUT",
                             f"{location.path}?{location.query}&digest={digest_of(data)}",
                             {**ALICE, **OCTETS})
    assert done.status == 201, done
    # Finished sessions are forgotten, for their owner too.
    again = await raw_request(shared_gateway.port, "GET", session, ALICE)
    assert again.status == 404


async def test_the_owner_may_switch_from_password_to_token(shared_gateway: RunningGateway) -> None:
    _, session = await start(shared_gateway, "myteam/switch", ALICE)
    token = (await fetch_token(shared_gateway.port, ALICE, "repository:myteam/switch:pull,push"))
    answer = await raw_request(shared_gateway.port, "GET", session, bearer(token["token"]))
    assert answer.status == 204, answer


async def test_a_session_is_bound_to_its_repository(shared_gateway: RunningGateway) -> None:
    _, session = await start(shared_gateway, "myteam/origin", ALICE)
    moved = session.replace("myteam/origin", "myteam/elsewh")
    answers: list[RawResponse] = [
        await raw_request(shared_gateway.port, method, moved, {**ALICE, **OCTETS}, body)
        for method, _, body in attempts(moved, digest_of(b"x"))]
    assert [a.status for a in answers] == [404] * 5
    still = await raw_request(shared_gateway.port, "GET", session, ALICE)
    assert still.status == 204


async def test_cancel_by_the_owner_then_nobody_can_use_it(shared_gateway: RunningGateway) -> None:
    _, session = await start(shared_gateway, "myteam/cancelled", ALICE)
    cancelled = await raw_request(shared_gateway.port, "DELETE", session, ALICE)
    assert cancelled.status == 204, cancelled
    for headers in (ALICE, FRANK):
        answer = await raw_request(shared_gateway.port, "PATCH", session, {**headers, **OCTETS},
                                   b"late")
        assert answer.status == 404


@pytest.mark.parametrize("headers", [{}, basic("bob", ALL_PASSWORDS["bob"])])
async def test_callers_without_push_are_denied_before_the_session_is_looked_at(
        shared_gateway: RunningGateway, headers: dict[str, str]) -> None:
    uuid, session = await start(shared_gateway, "myteam/denied", ALICE)
    real = await raw_request(shared_gateway.port, "PATCH", session, {**headers, **OCTETS}, b"x")
    fake = await raw_request(shared_gateway.port, "PATCH", session.replace(uuid, "e" * len(uuid)),
                             {**headers, **OCTETS}, b"x")
    assert real.status == 401
    assert real.comparable([uuid]) == fake.comparable(["e" * len(uuid)])
