"""The facts docs/protocol-parity.md records, checked against the installed distribution 2.8.2
with its own token auth (no gateway here): if a registry build behaves otherwise, the parity
tests of issue 11 rest on something that no longer holds, and this module says which fact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from support import Upstream, start_registry
from support.registry_auth import RegistrySecurity, TokenAuth
from support.wire import Answer, exchange, first_answer, request

LAYER = b"a layer in src/app"
DIGEST = "sha256:" + hashlib.sha256(LAYER).hexdigest()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Upstream, TokenAuth]]:
    directory = tmp_path_factory.mktemp("token-registry")
    auth = TokenAuth.create(directory / "auth", realm="https://auth.example/token")
    upstream = start_registry(directory / "registry", security=RegistrySecurity(token=auth))
    try:
        full = auth.bearer(("src/app", ["pull", "push"]))
        target = session(upstream, full)
        status, _, _ = upstream.request("PUT", f"{target}&digest={DIGEST}", LAYER,
                                        {**full, "Content-Type": "application/octet-stream"})
        assert status == 201
        yield upstream, auth
    finally:
        upstream.close()


def session(upstream: Upstream, headers: dict[str, str]) -> str:
    status, answer, _ = upstream.request("POST", "/v2/src/app/blobs/uploads/", b"", headers)
    assert status == 202, status
    location = urlsplit(answer["Location"])
    return f"{location.path}?{location.query}"


def scope_set(challenge: str) -> dict[str, set[str]]:
    scope = challenge.split('scope="', 1)[1].split('"', 1)[0]
    found: dict[str, set[str]] = {}
    for resource in scope.split(" "):
        _, name, actions = resource.split(":")
        found[name] = set(actions.split(","))
    return found


def pairs(headers: dict[str, str]) -> list[tuple[str, str]]:
    return list(headers.items())


async def ask(upstream: Upstream, data: bytes, wait: float = 5.0) -> Answer:
    answer = await exchange(upstream.port, data, wait)
    assert answer is not None
    return answer


@pytest.mark.parametrize("tag", [".INVALID_MANIFEST_NAME", "-tag", "t" * 129])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("with_token", [True, False])
async def test_a_tag_outside_the_grammar_is_a_plain_404(
        token_registry: tuple[Upstream, TokenAuth], tag: str, method: str,
        with_token: bool) -> None:
    upstream, auth = token_registry
    headers = pairs(auth.bearer(("src/app", ["pull"]))) if with_token else []
    answer = await ask(upstream, request(method, f"/v2/src/app/manifests/{tag}", headers))
    assert answer.status == 404
    assert (answer.header("Content-Type") or "").startswith("text/plain")


async def test_a_mount_with_a_token_for_the_target_only_is_challenged_for_both(
        token_registry: tuple[Upstream, TokenAuth]) -> None:
    upstream, auth = token_registry
    target = f"/v2/dst/app/blobs/uploads/?mount={DIGEST}&from=src/app"
    answer = await ask(upstream, request("POST", target, pairs(auth.bearer(
        ("dst/app", ["pull", "push"]))), length=True))
    assert answer.status == 401
    challenge = answer.header("Www-Authenticate") or ""
    assert challenge.startswith('Bearer realm="https://auth.example/token",service="registry.test",'
                                'scope="')
    assert challenge.endswith('",error="insufficient_scope"')
    # The order of resources and of actions varies from answer to answer (a Go map): a set.
    assert scope_set(challenge) == {"dst/app": {"pull", "push"}, "src/app": {"pull"}}
    assert answer.error_code() == "UNAUTHORIZED"
    both = auth.bearer(("dst/app", ["pull", "push"]), ("src/app", ["pull"]))
    mounted = await ask(upstream, request("POST", target, pairs(both), length=True))
    assert mounted.status == 201 and mounted.header("Docker-Content-Digest") == DIGEST


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream; charset=x"])
async def test_a_patch_of_another_content_type_is_a_500_that_keeps_the_session(
        token_registry: tuple[Upstream, TokenAuth], content_type: str) -> None:
    upstream, auth = token_registry
    headers = auth.bearer(("src/app", ["pull", "push"]))
    target = session(upstream, headers)
    refused = await ask(upstream, request("PATCH", target, [*pairs(headers),
                                                            ("Content-Type", content_type)], b"abc"))
    assert refused.status == 500 and refused.error_code() == "UNKNOWN"
    ok = await ask(upstream, request("PATCH", target, [
        *pairs(headers), ("Content-Type", "application/octet-stream")], b"abc"))
    assert ok.status == 202


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_status_read_keeps_the_session(token_registry: tuple[Upstream, TokenAuth],
                                               method: str) -> None:
    upstream, auth = token_registry
    headers = auth.bearer(("src/app", ["pull", "push"]))
    octets = [*pairs(headers), ("Content-Type", "application/octet-stream")]
    patched = await ask(upstream, request("PATCH", session(upstream, headers), octets, b"abc"))
    location = urlsplit(patched.header("Location") or "")
    status = await ask(upstream, request(method, f"{location.path}?{location.query}",
                                         pairs(headers)))
    assert status.status == 204 and status.header("Range") == "0-2"
    after = urlsplit(status.header("Location") or "")
    resumed = await ask(upstream, request("PATCH", f"{after.path}?{after.query}", octets, b"def"))
    assert resumed.status == 202 and resumed.header("Range") == "0-5"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_read_declaring_a_body_it_does_not_send_waits(
        token_registry: tuple[Upstream, TokenAuth], method: str) -> None:
    upstream, auth = token_registry
    headers = pairs(auth.bearer(("src/app", ["pull"])))
    target = f"/v2/src/app/blobs/{DIGEST}"
    without = await first_answer(upstream.port, request(
        method, target, [*headers, ("Content-Length", "4")], close=False), wait=2.0)
    assert without is None  # Go waits for the 4 bytes before its keep-alive response head
    sent = await first_answer(upstream.port, request(method, target, headers, b"abcd",
                                                     close=False), wait=2.0)
    assert sent is not None and sent.status == 200


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_manifest_read_by_a_blob_digest_is_a_500(
        token_registry: tuple[Upstream, TokenAuth], method: str) -> None:
    upstream, auth = token_registry
    answer = await ask(upstream, request(method, f"/v2/src/app/manifests/{DIGEST}",
                                         pairs(auth.bearer(("src/app", ["pull"])))))
    assert answer.status == 500


@pytest.mark.parametrize("value", ["bytes=abc", "bytes=5-1", "items=0-1", "bytes=1000-2000"])
async def test_an_odd_range_gets_a_mis_framed_416(token_registry: tuple[Upstream, TokenAuth],
                                                  value: str) -> None:
    upstream, auth = token_registry
    answer = await ask(upstream, request("GET", f"/v2/src/app/blobs/{DIGEST}", [
        *pairs(auth.bearer(("src/app", ["pull"]))), ("Range", value)]))
    assert answer.status == 416
    assert int(answer.header("Content-Length") or 0) == len(LAYER) > len(answer.body)
