"""The test fixtures start the real programs, and those programs do what the other tests rely on."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from support import Ctr, Docker, RedisServer, Skopeo, Upstream, free_port


def get_json(upstream: Upstream, path: str) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), json.loads(resp.read())
    finally:
        conn.close()


def push_busybox(docker: Docker, image: str, upstream: Upstream, repo: str) -> tuple[str, str]:
    """Tag and push ``image`` as ``upstream/repo:1``; returns (reference, manifest digest)."""
    ref = f"{upstream.host}/{repo}:1"
    docker.run("tag", image, ref)
    out = docker.run("push", ref).stdout
    digest = next(w for w in out.split() if w.startswith("sha256:"))
    return ref, digest


def test_free_port_is_bindable_on_loopback() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_registry_answers_v2_and_lists_seeded_repositories(registry_upstream: Upstream) -> None:
    status, headers, body = get_json(registry_upstream, "/v2/")
    assert (status, body) == (200, {})
    assert headers["Docker-Distribution-Api-Version"] == "registry/2.0"

    registry_upstream.seed(["team/app", "library/base", "solo"])
    started = time.monotonic()
    assert registry_upstream.seed(f"bulk/r{i:05d}" for i in range(10_000)) == 10_000
    assert time.monotonic() - started < 20

    status, headers, body = get_json(registry_upstream, "/v2/_catalog?n=3")
    assert status == 200
    assert body == {"repositories": ["bulk/r00000", "bulk/r00001", "bulk/r00002"]}
    assert headers["Link"] == '</v2/_catalog?last=bulk%2Fr00002&n=3>; rel="next"'
    status, _, body = get_json(registry_upstream, "/v2/_catalog?n=1000&last=bulk/r09999")
    assert body == {"repositories": ["library/base", "solo", "team/app"]}
    status, _, body = get_json(registry_upstream, "/v2/team/app/tags/list")
    assert (status, body) == (200, {"name": "team/app", "tags": None})


def test_registry_restarts_on_same_port_with_its_data(registry_upstream: Upstream) -> None:
    registry_upstream.seed(["kept/repo"])
    port = registry_upstream.port
    registry_upstream.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    registry_upstream.start()
    assert registry_upstream.port == port
    assert get_json(registry_upstream, "/v2/_catalog")[2] == {"repositories": ["kept/repo"]}


def test_session_registry_is_shared_and_on_tmpfs(registry_upstream_session: Upstream) -> None:
    status, _, body = get_json(registry_upstream_session, "/v2/")
    assert (status, body) == (200, {})
    assert registry_upstream_session.owns_storage


def test_seed_refuses_path_tricks(registry_upstream: Upstream) -> None:
    for bad in ("", "a//b", "../etc", "a/./b", "a/_layers"):
        with pytest.raises(ValueError, match="not a repository name"):
            registry_upstream.seed([bad])


def test_redis_ping_and_outage_on_same_port(redis_server: RedisServer) -> None:
    client = redis_server.client()
    assert client.ping() is True
    client.set("k", "v")
    port = redis_server.port

    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        redis_server.client(retry_on_error=[]).ping()

    redis_server.start()
    assert redis_server.port == port
    assert redis_server.url == f"redis://127.0.0.1:{port}/0"
    assert client.ping() is True  # the pool reconnects
    assert client.get("k") is None  # no persistence: a restart is an empty server


def test_docker_push_pull_run_against_plain_http_registry(
    docker: Docker, busybox_image: str, registry_upstream: Upstream
) -> None:
    ref, digest = push_busybox(docker, busybox_image, registry_upstream, "smoke/busybox")
    assert get_json(registry_upstream, "/v2/_catalog")[2] == {"repositories": ["smoke/busybox"]}

    docker.run("rmi", ref)
    docker.run("pull", ref)
    # The session's one busybox image may carry digests of other tests' registries too.
    repo_digests = docker.run("image", "inspect", "--format", "{{json .RepoDigests}}", ref)
    assert f"{registry_upstream.host}/smoke/busybox@{digest}" in json.loads(repo_digests.stdout)

    # --network host reaches the loopback registry from inside a container.
    url = f"{registry_upstream.url}/v2/_catalog"
    args = ("run", "--rm", "--network", "host", ref, "wget", "-q", "-O", "-", url)
    out = docker.run(*args, timeout=60).stdout
    assert json.loads(out) == {"repositories": ["smoke/busybox"]}
    docker.run("rmi", ref)


def test_docker_config_dir_is_per_test(docker: Docker, registry_upstream: Upstream, tmp_path: Path) -> None:
    # The bare registry needs no auth, so login succeeds and just stores the credentials.
    assert "Login Succeeded" in docker.login(registry_upstream.host, "alice", "s3cret").stdout
    auths = json.loads((docker.config_dir / "config.json").read_text())["auths"]
    assert registry_upstream.host in auths

    other = tmp_path / "other-config"
    info = docker.run("info", "--format", "{{json .ServerVersion}}", config_dir=other)
    assert json.loads(info.stdout).startswith("20.10")
    assert not (other / "config.json").exists()


def test_skopeo_inspects_and_copies(
    docker: Docker, busybox_image: str, registry_upstream: Upstream, skopeo: Skopeo
) -> None:
    ref, digest = push_busybox(docker, busybox_image, registry_upstream, "smoke/skopeo")

    info = skopeo.inspect(f"docker://{ref}", creds="anyone:anything")
    assert info["Digest"] == digest
    assert info["RepoTags"] == ["1"]

    dest = f"docker://{registry_upstream.host}/smoke/copied:2"
    skopeo.run("copy", f"docker://{ref}", dest, src_creds="a:b", dest_creds="c:d")
    tags = skopeo.run("list-tags", f"docker://{registry_upstream.host}/smoke/copied")
    assert json.loads(tags.stdout)["Tags"] == ["2"]
    assert not skopeo.authfile.exists()


def test_ctr_pulls_with_plain_http(
    docker: Docker, busybox_image: str, registry_upstream: Upstream, ctr: Ctr
) -> None:
    assert ctr.address.is_socket()
    ref, digest = push_busybox(docker, busybox_image, registry_upstream, "smoke/ctr")

    result = ctr.pull(ref, user="anyone:anything")
    assert digest in result.stdout
    assert ctr.images() == [ref]

    failed = ctr.pull(f"{registry_upstream.host}/smoke/missing:1", check=False)
    assert failed.returncode != 0
    assert "not found" in failed.stderr
