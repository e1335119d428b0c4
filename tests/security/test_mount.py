"""Cross-repository mounts only from what the caller may pull; the registry's form reading closed.

alice may push myteam/*; `secret/mountsrc` holds a blob of secretteam's. A mount of it into
alice's own repository must become a plain upload (202) and leave the blob unreachable there,
whatever way the request is spelled. Spellings the registry would read differently from us
(form bodies, repeated parameters, ';') are refused with 400.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from support import Upstream
from support.credentials import basic, bearer
from support.gateway import RunningGateway
from support.security import (
    ALL_PASSWORDS,
    RawResponse,
    digest_of,
    fetch_token,
    raw_request,
    seed_blob,
    send_raw,
)

ALICE = basic("alice", ALL_PASSWORDS["alice"])
SECRET_SRC, TEAM_SRC, PUBLIC_SRC = "secret/mountsrc", "myteam/mountsrc", "library/mountpub"


@pytest.fixture(scope="module")
def blobs(registry_upstream_session: Upstream) -> dict[str, str]:
    base = registry_upstream_session.url
    return {
        SECRET_SRC: seed_blob(base, SECRET_SRC, b"secretteam's private layer"),
        TEAM_SRC: seed_blob(base, TEAM_SRC, b"myteam's own layer"),
        PUBLIC_SRC: seed_blob(base, PUBLIC_SRC, b"a public layer"),
    }


async def blob_status(gateway: RunningGateway, repo: str, digest: str) -> int:
    return (await raw_request(gateway.port, "HEAD", f"/v2/{repo}/blobs/{digest}", ALICE)).status


async def mount(gateway: RunningGateway, target: str, query: str,
                headers: dict[str, str] | None = None, body: bytes = b"") -> RawResponse:
    return await raw_request(gateway.port, "POST", f"/v2/{target}/blobs/uploads/?{query}",
                             headers if headers is not None else ALICE, body)


async def test_mount_from_a_repository_the_caller_may_pull(
        shared_gateway: RunningGateway, blobs: dict[str, str]) -> None:
    for source in (TEAM_SRC, PUBLIC_SRC):
        digest = blobs[source]
        answer = await mount(shared_gateway, "myteam/legit", f"mount={digest}&from={source}")
        assert answer.status == 201, answer
        assert answer.header("Docker-Content-Digest") == digest
        assert await blob_status(shared_gateway, "myteam/legit", digest) == 200


@pytest.mark.parametrize("source", [
    SECRET_SRC, "secret%2Fmountsrc", "SECRET/mountsrc", "secret/Mountsrc", "secret//mountsrc",
    "./secret/mountsrc", "myteam/../secret/mountsrc", "secret/mountsrc%00", "secret/mountsrc/",
    "secret%2fmountsrc", "%73ecret/mountsrc",
])
async def test_a_private_blob_cannot_be_mounted(
        shared_gateway: RunningGateway, blobs: dict[str, str], source: str) -> None:
    digest = blobs[SECRET_SRC]
    answer = await mount(shared_gateway, "myteam/loot", f"mount={digest}&from={source}")
    assert answer.status == 202, answer  # a plain upload instead
    location = urlsplit(answer.header("Location") or "")
    assert location.path.startswith("/v2/myteam/loot/blobs/uploads/")
    assert "mount" not in location.query and "from" not in location.query
    assert await blob_status(shared_gateway, "myteam/loot", digest) == 404
    # The upload that started is an ordinary one: it works.
    data = f"alice's own layer via {source}".encode()
    done = await raw_request(shared_gateway.port, "PUT",
                             f"{location.path}?{location.query}&digest={digest_of(data)}",
                             {**ALICE, "Content-Type": "application/octet-stream"}, data)
    assert done.status == 201, done


async def test_stripped_mount_looks_like_a_mount_from_nowhere(
        shared_gateway: RunningGateway, blobs: dict[str, str]) -> None:
    """Private source or missing source: the same plain 202 (no oracle through mounts)."""
    digest = blobs[SECRET_SRC]
    private = await mount(shared_gateway, "myteam/loot2", f"mount={digest}&from={SECRET_SRC}")
    missing = await mount(shared_gateway, "myteam/loot2", f"mount={digest}&from=secret/nothing")
    assert private.status == missing.status == 202
    assert [k for k, _ in private.headers] == [k for k, _ in missing.headers]


async def test_a_token_without_pull_on_the_source_does_not_mount(
        shared_gateway: RunningGateway, blobs: dict[str, str]) -> None:
    digest = blobs[SECRET_SRC]
    body = await fetch_token(shared_gateway.port, ALICE, "repository:myteam/loot3:pull,push",
                             f"repository:{SECRET_SRC}:pull")
    answer = await mount(shared_gateway, "myteam/loot3", f"mount={digest}&from={SECRET_SRC}",
                         bearer(body["token"]))
    assert answer.status == 202
    assert await blob_status(shared_gateway, "myteam/loot3", digest) == 404


async def test_mount_needs_push_on_the_target(shared_gateway: RunningGateway,
                                              blobs: dict[str, str]) -> None:
    answer = await mount(shared_gateway, "library/stolen",
                         f"mount={blobs[TEAM_SRC]}&from={TEAM_SRC}")
    assert answer.status == 401
    assert answer.json()["errors"][0]["code"] == "DENIED"


@pytest.mark.parametrize("query", [
    "mount={d}&mount={d}&from=myteam/mountsrc",
    "mount={d}&from=myteam/mountsrc&from=secret/mountsrc",
    "mount={d}&fr%6fm=myteam/mountsrc&from=secret/mountsrc",
    "mount={d}&from=secret/mountsrc&_state=a&_state=b",
    "digest={d}&digest={d}",
    "mount={d};from=secret/mountsrc",
    "mount={d}&from=myteam/mountsrc;from=secret/mountsrc",
])
async def test_ambiguous_queries_are_refused(shared_gateway: RunningGateway,
                                             blobs: dict[str, str], query: str) -> None:
    answer = await mount(shared_gateway, "myteam/loot4", query.format(d=blobs[SECRET_SRC]))
    assert answer.status == 400, answer
    assert await blob_status(shared_gateway, "myteam/loot4", blobs[SECRET_SRC]) == 404


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "Application/X-WWW-Form-Urlencoded",
    "application/x-www-form-urlencoded ;",
    "multipart/form-data; boundary=xyz",
    "multipart/mixed; boundary=xyz",
    "MULTIPART/FORM-DATA; boundary=xyz",
])
async def test_form_bodies_are_refused(shared_gateway: RunningGateway, blobs: dict[str, str],
                                       content_type: str) -> None:
    """Go's FormValue would read mount/from from the body, which our query check never saw."""
    digest = blobs[SECRET_SRC]
    form = f"mount={digest}&from={SECRET_SRC}".encode()
    if content_type.lower().startswith("multipart"):
        form = (f'--xyz\r\nContent-Disposition: form-data; name="mount"\r\n\r\n{digest}\r\n'
                f'--xyz\r\nContent-Disposition: form-data; name="from"\r\n\r\n{SECRET_SRC}\r\n'
                "--xyz--\r\n").encode()
    answer = await mount(shared_gateway, "myteam/loot5", "", {**ALICE, "Content-Type": content_type},
                         form)
    assert answer.status == 400, answer
    assert await blob_status(shared_gateway, "myteam/loot5", digest) == 404


async def test_two_content_types_are_refused(shared_gateway: RunningGateway,
                                             blobs: dict[str, str]) -> None:
    headers = [*ALICE.items(), ("Content-Type", "application/octet-stream"),
               ("Content-Type", "application/x-www-form-urlencoded")]
    answer = await raw_request(shared_gateway.port, "POST", "/v2/myteam/loot6/blobs/uploads/",
                               headers, f"mount={blobs[SECRET_SRC]}&from={SECRET_SRC}".encode())
    assert answer.status == 400


async def test_non_ascii_content_type_is_refused(shared_gateway: RunningGateway) -> None:
    # Go lowercases U+0130 to 'i': "applİcation/x-www-form-urlencoded" is a form to it.
    headers = [*ALICE.items(), ("Content-Type", "appl\u0130cation/x-www-form-urlencoded")]
    target = "/v2/myteam/loot7/blobs/uploads/"
    raw = (f"POST {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n"
           + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("utf-8")
    answer = await send_raw(shared_gateway.port, raw)
    assert answer is not None and answer.status == 400
