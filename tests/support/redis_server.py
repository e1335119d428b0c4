"""A real ``redis-server`` on 127.0.0.1 with no persistence, restartable on the same port."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import redis

from .procs import ManagedProcess, find_program, start_on_free_port


class RedisServer:
    """``stop()`` then ``start()`` simulates an outage: same port, empty data afterwards."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.log_path = workdir / "redis.log"
        workdir.mkdir(parents=True, exist_ok=True)
        options = {
            "port": str(port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "dir": str(workdir),
            "daemonize": "no",
            "logfile": "",
        }
        argv = [find_program("redis-server")]
        for key, value in options.items():
            argv += [f"--{key}", value]
        self.process = ManagedProcess("redis-server", argv, log_path=self.log_path, cwd=workdir)
        self._clients: list[redis.Redis] = []

    def __repr__(self) -> str:
        return f"<RedisServer {self.url}>"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart, on the same port) and wait until it answers PING."""
        self.process.start()
        self.process.wait_ready(self._ready, timeout=timeout)

    def stop(self) -> None:
        self.process.stop()

    def client(self, **kwargs: Any) -> redis.Redis:
        """A sync client (``decode_responses=True`` and 5 s timeouts unless overridden).

        Clients made here are closed when the fixture ends.
        """
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": 5.0,
            "socket_connect_timeout": 5.0,
        }
        options.update(kwargs)
        client = redis.Redis.from_url(self.url, **options)
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Close the clients made by :meth:`client` and stop the server."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        self.stop()

    def _ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")


def start_redis(workdir: Path, *, timeout: float = 10.0) -> RedisServer:
    """Start a redis-server on a free loopback port, working directory ``workdir``."""

    def start(port: int) -> RedisServer:
        server = RedisServer(workdir, port)
        server.start(timeout=timeout)
        return server

    return start_on_free_port(start)
