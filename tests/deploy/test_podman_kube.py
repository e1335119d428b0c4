"""The rendered workloads run under `podman kube play`: two gateway replicas sharing Redis.

deploy/kubernetes/overlays/podman-test renders two single-replica gateway Deployments
(kube play makes one pod per Deployment), Redis and the registry, all on the host network
on loopback ports, which this test moves to free ones. The images are the ones the session's
dockerd built (the gateway's Dockerfile, deploy/services/Dockerfile), copied into a private
podman with `docker save | podman load`. Then: docker login, push through replica A and pull
through replica B; a token A issued is accepted by B (the same key); a lockout started on A
holds on B (the same Redis).

Where podman itself cannot run a pod here, the test is skipped with podman's own words.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support import Docker, Dockerd, free_port, wait_until
from support.ops import http_answer
from support.procs import CommandError

from deploy.images import DeployImages
from deploy.kube import PASSWORDS, remap_ports, render, stage_deploy_tree
from deploy.podman import Podman

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# The overlay's loopback ports: replicas A and B (and their metrics), the registry, Redis.
PORTS = (25051, 25052, 29101, 29102, 25000, 25379)
PLAYABLE = {"Deployment", "ConfigMap", "PersistentVolumeClaim"}
IGNORED = {"Service", "PodDisruptionBudget", "NetworkPolicy"}  # nothing to podman
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True)
class Stack:
    podman: Podman
    a: str  # host:port of replica A
    b: str
    redis_port: int

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        """A failure inside shows the tails of the gateways' and the registry's logs."""
        try:
            yield
        except Exception as exc:
            tails = "\n".join(f"--- {c} ---\n{self.podman.logs(c)[-2500:]}" for c in (
                "registry-gateway-a-pod-0-gateway", "registry-gateway-b-pod-0-gateway",
                "registry-pod-0-registry"))
            raise AssertionError(f"{exc}\n{tails}") from exc


def _probe(podman: Podman, image: str, workdir: Path) -> None:
    """Skip, quoting podman, when this sandbox cannot run a host-network pod at all."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
           "spec": {"hostNetwork": True, "restartPolicy": "Never", "containers": [
               {"name": "probe", "image": image, "command": ["sleep", "30"]}]}}
    path = workdir / "probe.yaml"
    path.write_text(yaml.safe_dump(pod))
    try:
        podman.run("kube", "play", str(path), timeout=120)
        podman.run("kube", "down", str(path), timeout=120)
    except CommandError as exc:
        pytest.skip(f"podman kube play cannot run here: {exc.stderr.strip() or exc.stdout}")


def _playable(text: str) -> str:
    docs = [d for d in yaml.safe_load_all(text) if d]
    kinds = {d["kind"] for d in docs}
    assert kinds <= PLAYABLE | IGNORED, kinds - PLAYABLE - IGNORED
    return yaml.safe_dump_all([d for d in docs if d["kind"] in PLAYABLE])


def _ready(host: str) -> bool:
    with urllib.request.urlopen(f"http://{host}/readyz", timeout=2) as response:
        return bool(response.status == 200)


@pytest.fixture(scope="module")
def stack(deploy_images: DeployImages, dockerd: Dockerd,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("podman")
    podman = Podman(Path(tempfile.mkdtemp(prefix="rgp-", dir="/tmp")))  # short socket paths
    try:
        podman.load_from_docker(dockerd.client(), [deploy_images.gateway, deploy_images.services])
        _probe(podman, f"localhost/{deploy_images.services}", workdir)
        ports = {old: free_port() for old in PORTS}
        staged = stage_deploy_tree(workdir) / "kubernetes" / "overlays" / "podman-test"
        rendered = yaml.safe_dump_all(render(staged))
        play = workdir / "play.yaml"
        play.write_text(_playable(remap_ports(rendered, ports)))
        podman.run("kube", "play", str(play), timeout=300)
        a, b = f"127.0.0.1:{ports[25051]}", f"127.0.0.1:{ports[25052]}"
        for host, pod in ((a, "registry-gateway-a"), (b, "registry-gateway-b")):
            try:
                wait_until(functools.partial(_ready, host), timeout=90, interval=0.5,
                           what=f"{host}/readyz")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{podman.logs(pod + '-pod-0-gateway')[-3000:]}"
                                     ) from None
        yield Stack(podman, a, b, ports[25379])
    finally:
        podman.close()


@pytest.fixture(scope="module")
def client(dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> Docker:
    return dockerd.client(tmp_path_factory.mktemp("podman-docker-config"))


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    return http_answer(urllib.request.Request(url, headers=headers or {}), timeout=10)


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _token(host: str, scope: str, user: str, password: str) -> tuple[int, bytes]:
    return _get(f"http://{host}/token?service=registry.test&scope={scope}", _basic(user, password))


def test_pods_run_as_the_manifests_say(stack: Stack) -> None:
    for pod in ("registry-gateway-a", "registry-gateway-b"):
        container = f"{pod}-pod-0-gateway"
        user = stack.podman.run("inspect", "--format", "{{.Config.User}}", container).stdout
        assert user.strip().startswith("10001"), user
        readonly = stack.podman.run("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}",
                                    container).stdout
        assert readonly.strip() == "true"
        written = stack.podman.run("exec", container, "touch", "/opt/x", check=False)
        assert written.returncode != 0 and "Read-only file system" in written.stderr
    for host in (stack.a, stack.b):
        assert _get(f"http://{host}/healthz")[0] == 200


def test_push_through_one_replica_pull_through_the_other(
    stack: Stack, client: Docker, busybox_image: str
) -> None:
    pushed, pulled = f"{stack.a}/platform/podman:1", f"{stack.b}/platform/podman:1"
    with stack.logs_on_failure():
        for host in (stack.a, stack.b):
            client.login(host, "alice", PASSWORDS["alice"])
        client.run("tag", busybox_image, pushed)
        client.run("push", pushed)
        client.run("pull", pulled)
    ids = {client.run("image", "inspect", "--format", "{{.Id}}", ref).stdout for ref in
           (pushed, pulled, busybox_image)}
    assert len(ids) == 1
    client.run("rmi", pushed, pulled)
    client.run("logout", stack.b)
    denied = client.run("pull", pulled, check=False)
    assert denied.returncode != 0 and "pull access denied" in denied.stderr, denied.stderr


def test_a_token_from_one_replica_works_on_the_other(
    stack: Stack, client: Docker, busybox_image: str
) -> None:
    with stack.logs_on_failure():
        client.login(stack.a, "alice", PASSWORDS["alice"])
        client.run("tag", busybox_image, f"{stack.a}/platform/token:1")
        client.run("push", f"{stack.a}/platform/token:1")
    status, body = _token(stack.a, "repository:platform/token:pull", "alice", PASSWORDS["alice"])
    assert status == 200
    bearer = {"Authorization": "Bearer " + json.loads(body)["token"], "Accept": MANIFEST}
    assert _get(f"http://{stack.b}/v2/platform/token/manifests/1", bearer)[0] == 200
    assert _get(f"http://{stack.b}/v2/platform/token/manifests/1", {"Accept": MANIFEST}
                )[0] == 401


def test_a_lockout_on_one_replica_holds_on_the_other(stack: Stack) -> None:
    scope = "repository:library/x:pull"
    for attempt in range(3):  # the overlay's lockout: 3 distinct failures (a retry counts once)
        assert _token(stack.a, scope, "bob", f"wrong-{attempt}")[0] == 401
    assert _token(stack.b, scope, "bob", PASSWORDS["bob"])[0] == 429
    assert _token(stack.b, scope, "alice", PASSWORDS["alice"])[0] == 200  # only bob
