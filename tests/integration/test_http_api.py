"""The token endpoint and /v2/ at the HTTP level, against a real registry."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import aiohttp
import jwt
import pytest
from support import Upstream
from support.credentials import basic, write_key
from support.gateway import PASSWORDS, RunningGateway
from support.http_api import SERVICE, push_blob, token_answer


@pytest.fixture
async def session() -> Any:
    # No keep-alive: tests restart the gateway under the session.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as client:
        yield client


async def test_token_response_shape(session: aiohttp.ClientSession,
                                    gateway: RunningGateway) -> None:
    body = await token_answer(session, gateway, "alice", "repository:myteam/app:pull,push",
                           "repository:library/x:pull,push", "registry:catalog:*")
    assert body["token"] == body["access_token"]
    assert isinstance(body["expires_in"], int) and body["expires_in"] == 300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["issued_at"])
    assert "refresh_token" not in body
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["aud"] == SERVICE
    assert claims["access"] == [
        {"type": "repository", "name": "myteam/app", "actions": ["pull", "push"]},
        {"type": "repository", "name": "library/x", "actions": ["pull"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]


async def test_anonymous_token_is_granted_what_anonymous_may_do(
        session: aiohttp.ClientSession, gateway: RunningGateway) -> None:
    body = await token_answer(session, gateway, None, "repository:myteam/app:pull",
                           "repository:library/x:pull,push", "repository:nothing/here:pull")
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["sub"] == ""
    assert claims["access"] == [{"type": "repository", "name": "library/x", "actions": ["pull"]}]


async def test_star_scope_grants_every_allowed_action(session: aiohttp.ClientSession,
                                                      gateway: RunningGateway) -> None:
    for user, actions in (("alice", ["pull", "push", "delete"]), ("ci-bot", ["pull"])):
        body = await token_answer(session, gateway, user, "repository:myteam/app:*")
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert claims["access"][0]["actions"] == actions


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("mallory", "x"), ("dave", None),
                                           ("old-bot", None), ("alice", "x" * 100)])
async def test_bad_logins_get_the_same_401(session: aiohttp.ClientSession,
                                           gateway: RunningGateway, user: str,
                                           password: str | None) -> None:
    secret = PASSWORDS.get(user, "") if password is None else password
    async with session.get(f"{gateway.url}/token?service={SERVICE}",
                           headers=basic(user, secret)) as response:
        assert response.status == 401
        assert await response.json() == {"errors": [
            {"code": "UNAUTHORIZED", "message": "incorrect username or password"}]}


async def test_oauth_password_and_refresh_grants(session: aiohttp.ClientSession,
                                                 gateway: RunningGateway) -> None:
    form = {"grant_type": "password", "username": "alice", "password": PASSWORDS["alice"],
            "service": SERVICE, "client_id": "test", "access_type": "offline",
            "scope": "repository:myteam/app:pull repository:secret/x:pull"}
    async with session.post(f"{gateway.url}/token", data=form) as response:
        assert response.status == 200
        body = await response.json()
    assert body["scope"] == "repository:myteam/app:pull"
    refresh = body["refresh_token"]
    # The refresh token is not a Bearer token for /v2/.
    async with session.get(f"{gateway.url}/v2/",
                           headers={"Authorization": f"Bearer {refresh}"}) as response:
        assert response.status == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE,
            "client_id": "test", "scope": "repository:myteam/app:push"}
    async with session.post(f"{gateway.url}/token", data=form) as response:
        assert response.status == 200
        body = await response.json()
    assert body["scope"] == "repository:myteam/app:push"
    assert body["refresh_token"] == refresh
    async with session.post(f"{gateway.url}/token", data={**form, "refresh_token": "x.y.z"}) as r:
        assert r.status == 401
    async with session.post(f"{gateway.url}/token", data={**form, "service": "other"}) as r:
        assert r.status == 400
    async with session.post(f"{gateway.url}/token", data={**form, "grant_type": "magic"}) as r:
        assert r.status == 400


async def test_refresh_token_survives_restart_but_not_disabling(
        session: aiohttp.ClientSession, gateway: RunningGateway, tmp_path: Any) -> None:
    key = write_key(tmp_path / "token.pem")
    config = gateway.copy_config()
    config["token"]["key_file"] = str(key)
    gateway.stop()
    gateway.write_config(config)
    gateway.start()
    refresh = (await token_answer(session, gateway, "alice", offline=True))["refresh_token"]
    gateway.stop()
    gateway.start()
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE,
            "client_id": "test"}
    async with session.post(f"{gateway.url}/token", data=form) as response:
        assert response.status == 200, "a restart must not log anybody out"
    config["users"]["alice"]["disabled"] = True
    gateway.stop()
    gateway.write_config(config)
    gateway.start()
    async with session.post(f"{gateway.url}/token", data=form) as response:
        assert response.status == 401


async def test_base_route_challenges_and_accepts_credentials(
        session: aiohttp.ClientSession, gateway: RunningGateway) -> None:
    async with session.get(f"{gateway.url}/v2/") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == (
            f'Bearer realm="{gateway.url}/token",service="{SERVICE}"')
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert await response.json() == {"errors": [
            {"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}]}
    async with session.get(f"{gateway.url}/v2/", headers=basic("alice")) as response:
        assert response.status == 200 and await response.json() == {}
    anonymous = (await token_answer(session, gateway, None))["token"]
    async with session.get(f"{gateway.url}/v2/",
                           headers={"Authorization": f"Bearer {anonymous}"}) as response:
        assert response.status == 200
    async with session.get(f"{gateway.url}/v2/", headers=basic("alice", "bad")) as response:
        assert response.status == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_basic_credentials_on_v2_requests(session: aiohttp.ClientSession,
                                                gateway: RunningGateway) -> None:
    data = b"hello registry"
    digest = await push_blob(session, gateway, "myteam/basic", data, basic("alice"))
    async with session.get(f"{gateway.url}/v2/myteam/basic/blobs/{digest}",
                           headers=basic("ci-bot")) as response:
        assert response.status == 200 and await response.read() == data
    async with session.head(f"{gateway.url}/v2/myteam/basic/blobs/{digest}",
                            headers=basic("ci-bot")) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(data))
    async with session.get(f"{gateway.url}/v2/myteam/basic/blobs/{digest}",
                           headers=basic("bob")) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].endswith(
            'scope="repository:myteam/basic:pull",error="insufficient_scope"')
        assert (await response.json())["errors"][0]["code"] == "DENIED"


async def test_token_access_and_current_config_both_decide(
        session: aiohttp.ClientSession, gateway: RunningGateway) -> None:
    pull_only = (await token_answer(session, gateway, "alice", "repository:myteam/t:pull"))["token"]
    async with session.post(f"{gateway.url}/v2/myteam/t/blobs/uploads/",
                            headers={"Authorization": f"Bearer {pull_only}"}) as response:
        assert response.status == 401
        assert 'scope="repository:myteam/t:pull,push",error="insufficient_scope"' in \
            response.headers["WWW-Authenticate"]


async def test_upstream_down_is_a_502_json_error(
        session: aiohttp.ClientSession, gateway: RunningGateway,
        registry_upstream: Upstream) -> None:
    registry_upstream.stop()
    try:
        async with session.get(f"{gateway.url}/v2/library/x/tags/list",
                               headers=basic("alice")) as response:
            assert response.status == 502
            assert (await response.json())["errors"][0]["code"] == "UNAVAILABLE"
        async with session.get(f"{gateway.url}/readyz") as response:
            assert response.status == 503
    finally:
        registry_upstream.start()
    async with session.get(f"{gateway.url}/v2/library/x/tags/list",
                           headers=basic("alice")) as response:
        assert response.status == 404
        assert (await response.json())["errors"][0]["code"] == "NAME_UNKNOWN"


async def test_hop_by_hop_and_forwarding_headers_are_not_relayed(
        session: aiohttp.ClientSession, gateway: RunningGateway) -> None:
    digest = await push_blob(session, gateway, "myteam/hdr", b"x" * 1000, basic("alice"))
    headers = {**basic("alice"), "Connection": "keep-alive, X-Secret", "X-Forwarded-Host": "evil",
               "Forwarded": "host=evil"}
    async with session.post(f"{gateway.url}/v2/myteam/hdr/blobs/uploads/",
                            headers=headers) as response:
        assert response.status == 202
        assert response.headers["Location"].startswith(f"{gateway.url}/v2/myteam/hdr/")
        assert "evil" not in json.dumps(dict(response.headers))
    async with session.get(f"{gateway.url}/v2/myteam/hdr/blobs/{digest}",
                           headers=basic("alice")) as response:
        assert "Www-Authenticate" not in response.headers
        assert response.headers.get("Transfer-Encoding") is None


async def test_chunked_patch_upload(session: aiohttp.ClientSession,
                                    gateway: RunningGateway) -> None:
    chunks = [bytes([i]) * 300_000 for i in range(5)]
    data = b"".join(chunks)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def body() -> Any:
        for chunk in chunks:
            yield chunk

    headers = basic("alice")
    async with session.post(f"{gateway.url}/v2/myteam/chunked/blobs/uploads/",
                            headers=headers) as response:
        location = response.headers["Location"]
    async with session.patch(location, data=body(), headers={
            **headers, "Content-Type": "application/octet-stream"}) as response:
        assert response.status == 202, await response.text()
        assert response.headers["Range"] == f"0-{len(data) - 1}"
        location = response.headers["Location"]
    async with session.put(f"{location}&digest={digest}", headers=headers) as response:
        assert response.status == 201, await response.text()
    async with session.get(f"{gateway.url}/v2/myteam/chunked/blobs/{digest}",
                           headers=headers) as response:
        assert hashlib.sha256(await response.read()).hexdigest() == digest[7:]
