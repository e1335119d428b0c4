"""The audit file: reopened on SIGUSR1 after rotation; client addresses; the writer itself."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path
from typing import Any

import pytest
from support import wait_until
from support.gateway import RunningGateway
from support.ops import GatewayFactory
from support.regclient import RegistryClient

from gateway.audit import REDACTED, AuditLog


def audit_path(gateway: RunningGateway) -> Path:
    return Path(gateway.config["audit"]["file"])


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def anonymous_pull(gateway: RunningGateway, repository: str,
                   headers: dict[str, str] | None = None) -> None:
    answer = RegistryClient(gateway.port).request(
        "GET", f"/v2/{repository}/manifests/latest", headers)
    assert answer.status == 401


def test_sigusr1_reopens_the_audit_file_after_rotation(ops_gateway: GatewayFactory) -> None:
    with ops_gateway() as gateway:
        path = audit_path(gateway)
        anonymous_pull(gateway, "myteam/before-rotation")
        assert [a["repository"] for a in read_lines(path)] == ["myteam/before-rotation"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o640

        rotated = path.with_name("audit.jsonl.1")
        path.rename(rotated)
        anonymous_pull(gateway, "myteam/still-old-file")  # before the signal: the renamed file
        gateway.signal(signal.SIGUSR1)
        wait_until(path.exists, timeout=10, what="the audit file to be reopened")
        anonymous_pull(gateway, "myteam/after-rotation")

        assert [a["repository"] for a in read_lines(rotated)] == [
            "myteam/before-rotation", "myteam/still-old-file"]
        assert [a["repository"] for a in read_lines(path)] == ["myteam/after-rotation"]
        assert gateway.process is not None and gateway.process.poll() is None


def test_client_address_from_x_forwarded_for_only_from_trusted_proxies(
    ops_gateway: GatewayFactory,
) -> None:
    forwarded = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
    with ops_gateway() as gateway:
        anonymous_pull(gateway, "myteam/untrusted", forwarded)
        assert read_lines(audit_path(gateway))[-1]["client"] == "127.0.0.1"
    with ops_gateway(trusted_proxies=["127.0.0.0/8", "203.0.113.0/24"]) as gateway:
        # Walking from the right, the first hop that is not a trusted proxy is the client.
        anonymous_pull(gateway, "myteam/one-proxy", {"X-Forwarded-For": "198.51.100.7, 192.0.2.1"})
        assert read_lines(audit_path(gateway))[-1]["client"] == "192.0.2.1"
        anonymous_pull(gateway, "myteam/two-proxies", forwarded)
        assert read_lines(audit_path(gateway))[-1]["client"] == "198.51.100.7"


def test_audit_log_redacts_fields_named_like_secrets(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a" / "audit.jsonl")
    log.write("access", user="alice", password="hunter2", Authorization="Basic eA==",
              token="eyJhbGciOi.x.y", bytes=3)
    log.close()
    (line,) = read_lines(tmp_path / "a" / "audit.jsonl")
    assert line["user"] == "alice" and line["bytes"] == 3
    assert line["password"] == line["Authorization"] == line["token"] == REDACTED
    assert line["time"].endswith("Z") and line["event"] == "access"


def test_audit_log_keeps_writing_when_reopen_fails(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    log = AuditLog(directory / "audit.jsonl")
    log.write("access", n=1)
    os.rename(directory / "audit.jsonl", tmp_path / "rotated.jsonl")
    directory.rmdir()
    directory.touch()  # a file where the directory was: the reopen cannot create the new file
    log.reopen()
    log.write("access", n=2)
    log.close()
    assert [a["n"] for a in read_lines(tmp_path / "rotated.jsonl")] == [1, 2]


def test_audit_log_defaults_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog(None)
    log.write("login", user="bob", result="deny", reason="bad_password")
    log.reopen()  # nothing to reopen: a no-op
    log.close()  # never closes stderr
    line = json.loads(capsys.readouterr().err)
    assert (line["event"], line["user"], line["reason"]) == ("login", "bob", "bad_password")
