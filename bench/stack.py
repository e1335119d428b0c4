"""Start everything the bench measures on loopback: registry, Redis, nginx, gateway replicas."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from blobs import Endpoint
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nginx import Nginx
from support.procs import ManagedProcess, find_program, free_port, run_command
from support.redis_server import RedisServer, start_redis
from support.registry import Upstream, scratch_dir, start_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where `python -m gateway` is imported from: this tree, or another one to compare (A/B).
GATEWAY_SRC = Path(os.environ.get("RG_BENCH_GATEWAY_SRC", str(REPO_ROOT)))
USER, PASSWORD = "bench", "bench-password-0123"
SERVICE = "gateway.bench"
REPOSITORY = "bench/app"  # every blob and the manifest live here


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def gateway_config(upstream_url: str, port: int, workdir: Path, redis_url: str | None,
                   extra_users: dict[str, Any] | None = None,
                   rules: list[dict[str, Any]] | None = None,
                   teams: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"},
        "upstream": {"url": upstream_url},
        # One key for every replica: a token from one is good at all of them.
        "token": {"service": SERVICE, "issuer": "registry-gateway-bench", "ttl": 3600,
                  "key_file": str(workdir / "token.pem")},
        "cache": {"ttl": 60},
        # The same bcrypt htpasswd file nginx reads, so both check the same hash.
        "htpasswd_file": str(workdir / "htpasswd"),
        "teams": {"bench": {"members": [USER]}, **(teams or {})},
        "users": extra_users or {},
        "repositories": rules if rules is not None else [
            {"match": "bench/**", "pull": ["team:bench"], "push": ["user:bench"],
             "comment": "the bench's images"},
        ],
    }
    if redis_url:
        config["cache"]["redis_url"] = redis_url
    return config


@dataclass
class Gateway:
    """One `python -m gateway serve` process."""

    workdir: Path
    port: int
    config: dict[str, Any]
    name: str = "gateway"
    src: Path = GATEWAY_SRC
    process: ManagedProcess | None = field(default=None, repr=False)
    started_in: float = 0.0
    _launched: float = field(default=0.0, repr=False)
    tls: ssl.SSLContext | None = field(default=None, repr=False)  # set when it serves TLS

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / f"{self.name}.yaml"

    @property
    def pid(self) -> int:
        assert self.process is not None and self.process.pid is not None
        return self.process.pid

    def start(self, timeout: float = 120.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Spawn the process without waiting: several gateways then boot side by side. (From
        the main thread: the death signal follows the thread that spawned the child.)"""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        env = {**os.environ, "PYTHONPATH": str(self.src)}
        self.process = ManagedProcess(
            self.name, [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path)],
            log_path=self.workdir / f"{self.name}.log", env=env, cwd=self.workdir)
        self._launched = time.perf_counter()
        self.process.start()

    def wait_ready(self, timeout: float = 120.0) -> None:
        assert self.process is not None
        self.process.wait_ready(self._ready, timeout=timeout)
        self.started_in = time.perf_counter() - self._launched

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=1, context=self.tls) as reply:
            return bool(reply.status == 200)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def token(self, scope: str) -> str:
        request = urllib.request.Request(
            f"{self.url}/token?service={SERVICE}&scope={scope}",
            headers={"Authorization": basic()})
        with urllib.request.urlopen(request, timeout=10, context=self.tls) as reply:
            return str(json.load(reply)["token"])

    def endpoint(self, authorization: str | None, name: str = "gateway") -> Endpoint:
        return Endpoint(name, "127.0.0.1", self.port, authorization, (self.pid,), self.tls)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10, context=self.tls) as reply:
            return str(reply.read().decode())


def write_token_key(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def write_htpasswd(path: Path) -> None:
    """`htpasswd -B` as the Docker docs say (bcrypt; apache2-utils' default cost, 5)."""
    run_command([find_program("htpasswd"), "-Bbc", str(path), USER, PASSWORD])


@dataclass
class Stack:
    workdir: Path
    upstream: Upstream
    redis: RedisServer
    nginx: Nginx
    gateways: list[Gateway]

    def direct(self) -> Endpoint:
        assert self.upstream.process.pid is not None
        return Endpoint("direct", "127.0.0.1", self.upstream.port, None,
                        (self.upstream.process.pid,))

    def via_nginx(self) -> Endpoint:
        assert self.nginx.process.pid is not None
        return Endpoint("nginx", "127.0.0.1", self.nginx.port, basic(),
                        tuple(process_tree(self.nginx.process.pid)))

    @property
    def gateway(self) -> Gateway:
        return self.gateways[0]


@contextlib.contextmanager
def running_stack(keep: bool = False, replicas: int = 1) -> Iterator[Stack]:
    """Registry (storage on tmpfs), Redis, nginx (auth proxy) and `replicas` gateways."""
    workdir = Path(tempfile.mkdtemp(prefix="rg-bench-"))
    storage = scratch_dir("rg-bench-storage-")
    started: list[Any] = []
    try:
        write_htpasswd(workdir / "htpasswd")
        write_token_key(workdir / "token.pem")
        upstream = start_registry(workdir / "registry", storage=storage, access_log=False)
        started.append(upstream)
        redis = start_redis(workdir / "redis")
        started.append(redis)
        nginx = Nginx(workdir / "nginx", free_port(), [upstream.host], workdir / "htpasswd")
        nginx.start()
        started.append(nginx)
        gateways = []
        for i in range(replicas):
            port = free_port()
            gateway = Gateway(workdir, port, gateway_config(upstream.url, port, workdir, redis.url),
                              name=f"gateway{i}")
            gateway.start()
            started.append(gateway)
            gateways.append(gateway)
        yield Stack(workdir, upstream, redis, nginx, gateways)
    finally:
        for item in reversed(started):
            with contextlib.suppress(Exception):
                item.stop()
        subprocess.run(["rm", "-rf", "--", str(storage)], check=False)
        if keep:
            print(f"bench: logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def process_tree(pid: int) -> list[int]:
    """`pid` and its children (nginx's workers)."""
    found = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: tuple[int, ...]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def peak_rss_reset(pid: int) -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next reading covers only what follows."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]
