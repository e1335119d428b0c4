"""Issue 11, defect 8: an upstream registry on TLS with a private CA, requiring a client
certificate, with an htpasswd of its own, so nobody can go around the gateway.

The gateway's config gains `upstream.ca_file`, `client_cert`, `client_key`, `username` and
`password_file`. Pushes and pulls through the gateway work (blob bodies byte for byte: the
spliced path is plain-TCP only, so it must be skipped or correct under TLS); the gateway's own
upstream reads (catalog, tag lists, the web pages, readiness) work too; the upstream's
credentials never reach a client (no Basic challenge relayed) nor a log. A plain-HTTP upstream
with credentials must carry them on the spliced blob path as well.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from support import Docker, Dockerd, Upstream, free_port, start_registry
from support.credentials import basic
from support.gateway import RunningGateway, base_config, push_as, running_gateway
from support.registry_auth import HtpasswdAuth, RegistrySecurity
from support.tls import issue_client_certificate, make_certificates

UPSTREAM_USER, UPSTREAM_PASSWORD = "gateway-to-registry", "upstream-Secret-4711"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass
class Stack:
    upstream: Upstream
    gateway: RunningGateway


def upstream_settings(upstream: Upstream, directory: Path) -> dict[str, Any]:
    security = upstream.security
    assert security.htpasswd is not None
    password_file = directory / "upstream.pw"
    password_file.write_text(security.htpasswd.password + "\n")
    password_file.chmod(0o600)
    settings: dict[str, Any] = {"url": upstream.url, "username": security.htpasswd.username,
                                "password_file": str(password_file)}
    if security.tls is not None:
        settings["ca_file"] = str(security.tls.ca_cert)
    if security.client_cert is not None:
        settings["client_cert"] = str(security.client_cert.cert)
        settings["client_key"] = str(security.client_cert.key)
    return settings


def stack(directory: Path, *, tls: bool) -> Iterator[Stack]:
    certs = make_certificates(directory / "certs") if tls else None
    security = RegistrySecurity(
        tls=certs, require_client_cert=tls,
        client_cert=issue_client_certificate(certs, directory / "client") if certs else None,
        htpasswd=HtpasswdAuth.create(directory / "htpasswd", UPSTREAM_USER, UPSTREAM_PASSWORD))
    upstream = start_registry(directory / "registry", security=security)
    try:
        port = free_port()
        config = base_config(upstream.url, port)
        config["upstream"] = upstream_settings(upstream, directory)
        config["audit"] = {"file": str(directory / "audit.jsonl")}
        with running_gateway(config, directory / "gateway", port) as gateway:
            yield Stack(upstream, gateway)
    finally:
        upstream.close()


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from stack(tmp_path_factory.mktemp("upstream-tls"), tls=True)


@pytest.fixture(scope="module")
def plain_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from stack(tmp_path_factory.mktemp("upstream-htpasswd"), tls=False)


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(port: int, repository: str, data: bytes) -> str:
    status, headers, body = call(port, "POST", f"/v2/{repository}/blobs/uploads/", basic("alice"), b"")
    assert status == 202, (status, body)
    location = urlsplit(headers["location"])
    target = f"{location.path}?{location.query}"
    status, headers, body = call(port, "PATCH", target,
                                 {**basic("alice"), "Content-Type": "application/octet-stream"}, data)
    assert status == 202, (status, body)
    location = urlsplit(headers["location"])
    status, _, body = call(port, "PUT", f"{location.path}?{location.query}&digest={digest(data)}",
                           basic("alice"), b"")
    assert status == 201, (status, body)
    return digest(data)


def push_image(port: int, repository: str, layer: bytes) -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": push_blob(port, repository, config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer), "digest": push_blob(port, repository, layer)}],
    }).encode()
    status, _, body = call(port, "PUT", f"/v2/{repository}/manifests/1",
                           {**basic("alice"), "Content-Type": MANIFEST}, manifest)
    assert status == 201, (status, body)
    return manifest


LAYERS = {"small": b"a small layer", "1 MiB": bytes(range(256)) * 4096}


@pytest.mark.parametrize("size", list(LAYERS))
@pytest.mark.parametrize("kind", ["tls", "plain"])
def test_push_and_pull_through_the_gateway(request: pytest.FixtureRequest, kind: str,
                                           size: str) -> None:
    running: Stack = request.getfixturevalue(f"{kind}_stack")
    port, repository, layer = running.gateway.port, f"myteam/up-{kind}-{size[0]}", LAYERS[size]
    manifest = push_image(port, repository, layer)
    status, _, body = call(port, "GET", f"/v2/{repository}/manifests/1",
                           {**basic("alice"), "Accept": MANIFEST})
    assert status == 200 and body == manifest
    status, headers, body = call(port, "GET", f"/v2/{repository}/blobs/{digest(layer)}", basic("alice"))
    assert status == 200 and body == layer, (status, len(body))
    assert headers.get("docker-content-digest") == digest(layer)
    status, headers, _ = call(port, "HEAD", f"/v2/{repository}/blobs/{digest(layer)}", basic("alice"))
    assert status == 200 and headers.get("content-length") == str(len(layer))
    status, _, body = call(port, "GET", f"/v2/{repository}/tags/list", basic("alice"))
    assert status == 200 and json.loads(body)["tags"] == ["1"]


@pytest.mark.parametrize("kind", ["tls", "plain"])
def test_the_gateways_own_upstream_reads(request: pytest.FixtureRequest, kind: str) -> None:
    running: Stack = request.getfixturevalue(f"{kind}_stack")
    port = running.gateway.port
    push_image(port, f"myteam/own-reads-{kind}", b"own reads")
    status, _, body = call(port, "GET", "/v2/_catalog", basic("alice"))
    assert status == 200 and f"myteam/own-reads-{kind}" in json.loads(body)["repositories"]
    assert call(port, "GET", "/readyz")[0] == 200
    status = call(port, "GET", "/ui/repositories/library/own-reads")[0]
    assert status == 404  # nothing there, but asked of the upstream without an error
    metrics = call(port, "GET", "/metrics")[2].decode()
    assert "registry_gateway_upstream_up 1.0" in metrics


@pytest.mark.parametrize("kind", ["tls", "plain"])
def test_the_upstream_credentials_never_leave(request: pytest.FixtureRequest, kind: str) -> None:
    running: Stack = request.getfixturevalue(f"{kind}_stack")
    port = running.gateway.port
    answers = [call(port, "GET", "/v2/"), call(port, "GET", "/v2/myteam/nothing/tags/list"),
               call(port, "GET", "/v2/myteam/nothing/tags/list", basic("alice")),
               call(port, "GET", "/v2/myteam/nothing/blobs/" + "sha256:" + "0" * 64, basic("alice")),
               call(port, "GET", "/metrics"), call(port, "GET", "/readyz")]
    basic_secret = base64.b64encode(f"{UPSTREAM_USER}:{UPSTREAM_PASSWORD}".encode()).decode()
    for status, headers, body in answers:
        assert "basic" not in headers.get("www-authenticate", "").lower(), headers
        text = json.dumps(headers) + body.decode(errors="replace")
        assert UPSTREAM_PASSWORD not in text and basic_secret not in text
        assert "test-registry" not in text  # the upstream's own realm
        assert status < 500, (status, body)
    logs = running.gateway.log_text()
    audit = Path(running.gateway.config["audit"]["file"]).read_text()
    for text in (logs, audit):
        assert UPSTREAM_PASSWORD not in text and basic_secret not in text


def test_wrong_upstream_credentials_are_not_relayed_to_clients(
        tmp_path: Path, tls_stack: Stack) -> None:
    """The gateway's own credentials refused by the registry: the client sees no Basic
    challenge (it would prompt for the wrong password) and no 2xx."""
    port = free_port()
    config = base_config(tls_stack.upstream.url, port)
    config["upstream"] = upstream_settings(tls_stack.upstream, tmp_path)
    Path(config["upstream"]["password_file"]).write_text("not-the-password\n")
    with running_gateway(config, tmp_path / "gateway", port) as gateway:
        status, headers, body = call(port, "GET", "/v2/myteam/up-tls-s/tags/list", basic("alice"))
        assert not 200 <= status < 300, (status, body)
        assert "basic" not in headers.get("www-authenticate", "").lower(), headers
        assert "not-the-password" not in gateway.log_text()


def test_docker_pushes_and_pulls_through_a_tls_upstream(
        tls_stack: Stack, dockerd: Dockerd, busybox_image: str,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    docker: Docker = dockerd.client(tmp_path_factory.mktemp("tls-docker"))
    ref = f"{tls_stack.gateway.host}/myteam/docker-tls:1"
    push_as(docker, tls_stack.gateway, "alice", busybox_image, ref)
    docker.run("pull", ref)
    docker.run("rmi", ref)
