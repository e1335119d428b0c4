"""The operations tests' gateway: the shared accounts and rules, an audit file, a lockout after
three failures; and one request whose error answers are returned instead of raised."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from support.gateway import RunningGateway, base_config

GatewayFactory = Callable[..., AbstractContextManager[RunningGateway]]


def ops_config(upstream_url: str, port: int, directory: Path, **server: Any) -> dict[str, Any]:
    """The shared test accounts and rules, an audit file, and a lockout after three failures."""
    config = base_config(upstream_url, port)
    config["server"].update(server)
    config["audit"] = {"file": str(directory / "audit" / "audit.jsonl")}
    config["auth"] = {"lockout": {"max_failures": 3, "window": 300, "cooldown": 300}}
    return config


def http_answer(request: str | urllib.request.Request, timeout: float = 10) -> tuple[int, bytes]:
    """(status, body) of one request (a URL is a GET); a 4xx or 5xx is an answer here."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # closes the response it holds (its socket otherwise waits for the GC)
            return exc.code, exc.read()
