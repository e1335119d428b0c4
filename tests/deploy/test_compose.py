"""deploy/compose on one machine: nginx in front of two gateways, Redis, the registry.

The compose file runs under Debian's docker-compose against the session's dockerd (no bridge:
every service uses the host network), from a staged copy of deploy/ whose loopback ports are
moved to free ones and whose secrets are test material. Then docker login, push and pull
through nginx, and a pull of a 60 MB image during which the gateway streaming a layer is
killed: docker retries that layer against the same address, nginx sends the retry to the
other gateway, and the pull completes. `docker-compose down -v` runs whatever happens.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support import Docker, Dockerd, free_port, wait_until
from support.docker import DOCKER_CLI
from support.ops import http_answer
from support.procs import find_program, run_command

from deploy.images import DeployImages
from deploy.kube import DEPLOY, PASSWORDS, remap_ports, stage_deploy_tree

# nginx, gateway-1, gateway-2, their metrics, the registry, Redis (as the files say).
PORTS = (5050, 5051, 5052, 9102, 9103, 5000, 6379)
FILES = ("docker-compose.yml", "nginx/nginx.conf", "config/gateway-1.yaml",
         "config/gateway-2.yaml")
LAYER_BYTES = 20_000_000
BUSY_BYTES = 256 * 1024  # unsent bytes on a gateway's socket: a layer is streaming


def test_gateway_configs_differ_only_in_listeners() -> None:
    one, two = (yaml.safe_load((DEPLOY / "compose" / "config" / f"gateway-{n}.yaml").read_text())
                for n in (1, 2))
    listeners = ("listen", "metrics_listen")
    for config in (one, two):
        assert config["config_watch"] is True
        assert config["server"]["public_url"] == "http://127.0.0.1:5050"  # nginx
    assert {k: v for k, v in one["server"].items() if k not in listeners} == \
        {k: v for k, v in two["server"].items() if k not in listeners}
    assert {k: v for k, v in one.items() if k != "server"} == \
        {k: v for k, v in two.items() if k != "server"}
    nginx = (DEPLOY / "compose" / "nginx" / "nginx.conf").read_text()
    upstreams = re.findall(r"^\s*server (\S+) ", nginx, re.M)
    assert upstreams == [one["server"]["listen"], two["server"]["listen"]]
    assert re.search(r"proxy_next_upstream error timeout http_502 http_503;", nginx)
    for directive in ("client_max_body_size 0;", "proxy_request_buffering off;",
                      "proxy_buffering off;"):
        assert directive in nginx


@dataclass(frozen=True)
class Compose:
    directory: Path
    env: dict[str, str]
    project: str
    nginx: str  # host:port

    def run(self, *args: str, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_command([find_program("docker-compose"), "-p", self.project, *args],
                           env=self.env, cwd=self.directory, check=check, timeout=timeout)

    def logs(self, service: str) -> str:
        return self.run("logs", "--no-color", service, check=False, timeout=60).stdout

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service).stdout.strip()

    def pid(self, service: str) -> int:
        inspect = run_command([DOCKER_CLI, "inspect", "--format", "{{.State.Pid}}",
                               self.container(service)], env=self.env)
        return int(inspect.stdout)


def _stage(workdir: Path, ports: dict[int, int]) -> Path:
    staged = stage_deploy_tree(workdir)
    compose = staged / "compose"
    for name in FILES:
        path = compose / name
        path.write_text(remap_ports(path.read_text(), {p: ports[p] for p in PORTS
                                                      if str(p) in path.read_text()}))
    for secret in (compose / "secrets").iterdir():
        os.chown(secret, 10001, 10001)  # the gateways' uid reads them
        secret.chmod(0o400)
    return compose


@pytest.fixture(scope="module")
def compose(deploy_images: DeployImages, dockerd: Dockerd,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    ports = {port: free_port() for port in PORTS}
    directory = _stage(tmp_path_factory.mktemp("compose"), ports)
    env = {**dockerd.env, "GATEWAY_IMAGE": deploy_images.gateway,
           "SERVICES_IMAGE": deploy_images.services}
    stack = Compose(directory, env, f"rgtest{ports[5050]}", f"127.0.0.1:{ports[5050]}")
    try:
        try:
            stack.run("up", "--detach", "--no-build", timeout=600)
            wait_until(lambda: _status(stack.nginx + "/v2/") == 401, timeout=60, interval=0.5,
                       what="nginx answering")
        except (subprocess.SubprocessError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{stack.run('logs', '--no-color', check=False).stdout}"
                                 [-6000:]) from None
        yield stack
    finally:
        stack.run("down", "--volumes", "--timeout", "5", check=False, timeout=300)


def _status(url: str) -> int:
    return http_answer(f"http://{url}", timeout=5)[0]


@pytest.fixture(scope="module")
def client(dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> Docker:
    return dockerd.client(tmp_path_factory.mktemp("compose-docker-config"))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_login_push_pull_through_nginx(
    compose: Compose, client: Docker, busybox_image: str
) -> None:
    reference = f"{compose.nginx}/platform/compose:1"
    client.login(compose.nginx, "alice", PASSWORDS["alice"])
    client.run("tag", busybox_image, reference)
    client.run("push", reference)
    client.run("rmi", reference)
    client.run("pull", reference)
    client.run("rmi", reference)
    served = set(re.findall(r'"(?:GET|HEAD|PUT|POST|PATCH) /v2/platform/compose/\S+ HTTP/1.1" '
                            r"\d+ \d+ upstream=(\S+) ", compose.logs("nginx")))
    assert len(served) == 2, served  # both gateways took part
    client.run("logout", compose.nginx)
    denied = client.run("pull", reference, check=False)
    assert denied.returncode != 0 and "pull access denied" in denied.stderr, denied.stderr


def _large_image(client: Docker, workdir: Path, base: str, reference: str) -> None:
    """Three layers of random bytes (incompressible), built with the classic builder so that
    `docker rmi` leaves no build cache behind and the pull must fetch every layer."""
    for n in range(3):
        (workdir / f"r{n}").write_bytes(os.urandom(LAYER_BYTES))
    (workdir / "Dockerfile").write_text(
        f"FROM {base}\n" + "".join(f"COPY r{n} /r{n}\n" for n in range(3)))
    run_command([DOCKER_CLI, "build", "--tag", reference, str(workdir)],
                env={**client.env(), "DOCKER_BUILDKIT": "0"}, timeout=300)


def _busy_port(ports: dict[int, str]) -> int | None:
    """The gateway port with the most unsent bytes on an established socket, if any."""
    queued: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            port, state = int(fields[1].rsplit(":", 1)[1], 16), fields[3]
            unsent = int(fields[4].split(":")[0], 16)
            if state == "01" and port in ports and unsent > BUSY_BYTES:
                queued[port] = queued.get(port, 0) + unsent
    return max(queued, key=queued.__getitem__) if queued else None


def _gateway_ports(compose: Compose) -> dict[int, str]:
    ports = {}
    for service in ("gateway-1", "gateway-2"):
        config = yaml.safe_load((compose.directory / "config" / f"{service}.yaml").read_text())
        ports[int(config["server"]["listen"].rsplit(":", 1)[1])] = service
    return ports


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pull_survives_a_gateway_killed_mid_pull(
    compose: Compose, client: Docker, busybox_image: str, tmp_path: Path
) -> None:
    reference = f"{compose.nginx}/platform/large:1"
    client.login(compose.nginx, "alice", PASSWORDS["alice"])
    _large_image(client, tmp_path, busybox_image, reference)
    client.run("push", reference, timeout=300)
    pushed = client.run("image", "inspect", "--format", "{{.Id}}", reference).stdout
    client.run("rmi", reference)
    ports = _gateway_ports(compose)
    pids = {port: compose.pid(service) for port, service in ports.items()}
    for service in ports.values():  # the killed one stays down, so a retry must go elsewhere
        run_command([DOCKER_CLI, "update", "--restart", "no", compose.container(service)],
                    env=compose.env)

    pull = subprocess.Popen([DOCKER_CLI, "pull", reference], env=client.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim, deadline = None, time.monotonic() + 60
    while victim is None and pull.poll() is None and time.monotonic() < deadline:
        victim = _busy_port(ports)
        time.sleep(0.005)
    assert victim is not None, "no layer was seen streaming from a gateway"
    os.kill(pids[victim], signal.SIGKILL)  # the container's process 1: the container dies
    output, _ = pull.communicate(timeout=300)
    assert pull.returncode == 0, output
    assert client.run("image", "inspect", "--format", "{{.Id}}", reference).stdout == pushed

    survivor = next(p for p in ports if p != victim)
    layer = (r'"GET /v2/platform/large/blobs/(sha256:\w+) HTTP/1.1" (\d+) (\d+) '
             r"upstream=(.+?) upstream_status=")
    requests = re.findall(layer, compose.logs("nginx"))
    cut = [d for d, status, sent, up in requests
           if up.endswith(f":{victim}") and int(sent) < LAYER_BYTES and status == "200"]
    assert cut, f"no layer download cut by the kill: {requests}"
    resumed = [d for d, status, _sent, up in requests
               if d in cut and up.endswith(f":{survivor}") and status in ("200", "206")]
    assert resumed, f"the cut download was not retried on the other gateway: {requests}"
    client.run("rmi", reference)
