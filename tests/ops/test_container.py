"""The Dockerfile builds an image that runs: docker login, push, pull and a denial through it.

The base is a debootstrapped Debian 12 (cached; see baseimage.py). The fixture's dockerd has no
bridge, so the image is built and run with host networking.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support import Docker, Dockerd, Upstream, free_port, run_command, wait_until
from support.docker import DOCKER_CLI
from support.gateway import PASSWORDS, base_config

from ops.baseimage import import_base

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "rg-test/registry-gateway:test"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),  # a first run debootstraps and pip-installs from the network
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap needs root"),
]


@pytest.fixture(scope="module")
def gateway_image(dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> str:
    docker = dockerd.client(tmp_path_factory.mktemp("image-build"))
    base = import_base(docker)
    # BuildKit: the classic builder snapshots the whole root filesystem for every instruction,
    # which on the test daemon's vfs storage turns a one-minute build into several.
    run_command([DOCKER_CLI, "build", "--network", "host", "--build-arg", f"BASE={base}",
                 "--tag", IMAGE, str(ROOT)], env={**docker.env(), "DOCKER_BUILDKIT": "1"},
                timeout=1200)
    return IMAGE


@pytest.fixture
def gateway_container(
    docker: Docker, gateway_image: str, registry_upstream: Upstream, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """The image running in front of the test registry; yields (container id, host:port)."""
    port = free_port()
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "gateway.yaml").write_text(
        yaml.safe_dump(base_config(registry_upstream.url, port), sort_keys=False))
    container = docker.run(
        "run", "--detach", "--network", "host",
        "--volume", f"{config_dir}:/etc/registry-gateway:ro",
        "--env", f"REGISTRY_GATEWAY_HEALTHCHECK_URL=http://127.0.0.1:{port}/healthz",
        "--health-interval", "1s", "--health-start-period", "30s",
        gateway_image,
    ).stdout.strip()
    try:
        wait_until(lambda: _health(docker, container) == "healthy", timeout=60, interval=0.5,
                   what=f"container health (logs: {_logs(docker, container)[-2000:]})")
        yield container, f"127.0.0.1:{port}"
    finally:
        docker.run("rm", "--force", container, check=False)


def _health(docker: Docker, container: str) -> str:
    state = json.loads(docker.run("inspect", "--format", "{{json .State}}", container).stdout)
    assert state["Running"], _logs(docker, container)
    return str(state.get("Health", {}).get("Status", ""))


def _logs(docker: Docker, container: str) -> str:
    result = docker.run("logs", container, check=False)
    return result.stdout + result.stderr


def test_image_metadata(docker: Docker, gateway_image: str) -> None:
    config = json.loads(docker.run("inspect", "--format", "{{json .Config}}", gateway_image).stdout)
    assert config["User"] == "10001:10001"
    assert "5050/tcp" in config["ExposedPorts"]
    assert "REGISTRY_GATEWAY_CONFIG=/etc/registry-gateway/gateway.yaml" in config["Env"]
    assert "http://127.0.0.1:5050/healthz" in " ".join(config["Healthcheck"]["Test"])
    assert config["Entrypoint"] == ["registry-gateway"]


def test_push_and_pull_through_the_container(
    docker: Docker, busybox_image: str, gateway_container: tuple[str, str]
) -> None:
    started = time.monotonic()
    container, host = gateway_container
    uid = docker.run("exec", container, "id", "-u").stdout.strip()
    assert uid == "10001"

    reference = f"{host}/myteam/container:1"
    docker.login(host, "alice", PASSWORDS["alice"])
    docker.run("tag", busybox_image, reference)
    docker.run("push", reference)
    docker.run("rmi", reference)
    docker.run("pull", reference)

    docker.run("logout", host)
    docker.run("rmi", reference)
    denied = docker.run("pull", reference, check=False)
    assert denied.returncode != 0
    assert "pull access denied" in denied.stderr, denied.stderr

    logs = _logs(docker, container)
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert ("push", "alice") in {(e["event"], e.get("user")) for e in events}
    # docker may settle a pull with a manifest HEAD when it still holds the image's layers, so
    # the pull shows as an allowed access, not always as a completed GET ("pull" event).
    assert any(e["event"] == "access" and e["user"] == "alice" and e["route"] == "manifests"
               and e["method"] in ("GET", "HEAD") and e["result"] == "allow"
               and e["status"] == 200 for e in events)
    assert any(e["event"] == "access" and e["result"] == "deny" and e["user"] == "anonymous"
               for e in events)
    assert PASSWORDS["alice"] not in logs
    assert time.monotonic() - started < 300
