"""Run the real gateway (`python -m gateway serve`) as a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from support.docker import Docker

TEST_COST = 4  # fast checks in tests; production hashes use 12

PASSWORDS = {
    "alice": "alice-secret",
    "bob": "bob-secret",
    "carol": "carol-secret",
    "dave": "dave-secret",
    "ci-bot": "ci-bot-secret",
    "old-bot": "old-bot-secret",
}


@cache
def password_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=TEST_COST)).decode()


def base_config(upstream_url: str, port: int, scheme: str = "http") -> dict[str, Any]:
    """The accounts and rules the integration tests share."""
    return {
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"{scheme}://127.0.0.1:{port}"},
        "upstream": {"url": upstream_url},
        "token": {"service": "gateway.test", "issuer": "registry-gateway-test", "ttl": 300},
        "cache": {"ttl": 60},
        "users": {
            "alice": {"password_hash": password_hash(PASSWORDS["alice"])},
            "bob": {"password_hash": password_hash(PASSWORDS["bob"])},
            "carol": {"password_hash": password_hash(PASSWORDS["carol"]), "admin": True},
            "dave": {"password_hash": password_hash(PASSWORDS["dave"]), "disabled": True},
        },
        "service_accounts": {
            "ci-bot": {
                "password_hash": password_hash(PASSWORDS["ci-bot"]),
                "expires": "2099-01-01T00:00:00Z",
            },
            "old-bot": {
                "password_hash": password_hash(PASSWORDS["old-bot"]),
                "expires": "2020-01-01T00:00:00Z",
            },
        },
        "teams": {"myteam": {"members": ["alice", "dave"]}},
        "repositories": [
            {
                "match": "myteam/*",
                "pull": ["team:myteam", "service:ci-bot", "service:old-bot"],
                "push": ["team:myteam"],
                "delete": ["user:alice"],
                "comment": "the team's own images",
            },
            {
                "match": "library/**",
                "visibility": "public",
                "push": ["user:carol"],
                "comment": "public base images",
            },
        ],
    }


@dataclass
class RunningGateway:
    config: dict[str, Any]
    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.directory / "gateway.yaml"

    @property
    def log_path(self) -> Path:
        return self.directory / "gateway.log"

    @property
    def url(self) -> str:
        return str(self.config["server"]["public_url"])

    @property
    def host(self) -> str:
        """What docker calls the registry: host:port."""
        return f"127.0.0.1:{self.port}"

    def write_config(self, config: dict[str, Any] | None = None) -> None:
        if config is not None:
            self.config = config
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def start(self, timeout: float = 20) -> None:
        self.write_config()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=self.directory,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway did not start in {timeout}s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        scheme = "https" if self.config["server"].get("tls") else "http"
        if scheme == "https":
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return True
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=0.5):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def reload(self, config: dict[str, Any] | None = None, settle: float = 0.0) -> None:
        """Write `config` (if given) and send SIGHUP."""
        self.write_config(config)
        self.signal(signal.SIGHUP)
        if settle:
            time.sleep(settle)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def copy_config(self) -> dict[str, Any]:
        return copy.deepcopy(self.config)


@contextlib.contextmanager
def running_gateway(
    config: dict[str, Any], directory: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[RunningGateway]:
    directory.mkdir(parents=True, exist_ok=True)
    gateway = RunningGateway(config, directory, port, env=env or {})
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def push_as(docker: Docker, gateway: RunningGateway, user: str, image: str, ref: str) -> str:
    """Log `user` in, push `image` as `ref` through the gateway, drop the local tag."""
    docker.login(gateway.host, user, PASSWORDS[user])
    docker.run("tag", image, ref)
    docker.run("push", ref)
    docker.run("rmi", ref)
    return ref
