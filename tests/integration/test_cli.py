"""The command line, run as a user would: `python -m gateway ...`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import yaml
from support.gateway import base_config


def gateway_cli(*args: str, stdin: str = "", env: dict[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], input=stdin,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=cwd)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(base_config("http://127.0.0.1:9", 5050)))
    return path


def test_check_config_accepts_a_valid_file(config_file: Path) -> None:
    result = gateway_cli("check-config", "--config", str(config_file))
    assert result.returncode == 0, result.stderr
    assert "ok (2 rules, 4 users, 2 service accounts)" in result.stdout
    assert "bcrypt cost 4 is low" in result.stderr  # the test hashes are cheap on purpose


def test_check_config_lists_every_problem(tmp_path: Path) -> None:
    config = base_config("http://127.0.0.1:9", 5050)
    config["repositories"][0]["pull"].append("team:ops")
    config["repositories"][1]["push"] = ["user:nobody"]
    config["users"]["alice"]["password_hash"] = "hunter2"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = gateway_cli("check-config", "--config", str(path))
    assert result.returncode == 1
    assert "3 problem(s)" in result.stderr
    assert "repositories[0].pull[3]: unknown team 'ops'" in result.stderr
    assert "repositories[1].push[0]: unknown user 'nobody'" in result.stderr
    assert "users.alice.password_hash: expected a bcrypt hash" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_path_from_the_environment(config_file: Path, tmp_path: Path) -> None:
    result = gateway_cli("check-config", env={"REGISTRY_GATEWAY_CONFIG": str(config_file)},
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    missing = gateway_cli("check-config", cwd=tmp_path,
                          env={"REGISTRY_GATEWAY_CONFIG": ""})
    assert missing.returncode == 1 and "config/gateway.yaml: cannot read" in missing.stderr


def test_hash_password_reads_stdin() -> None:
    result = gateway_cli("hash-password", stdin="correct horse\n")
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert hashed.startswith("$2b$12$")
    assert bcrypt.checkpw(b"correct horse", hashed.encode())
    assert gateway_cli("hash-password", stdin="\n").returncode == 1
    too_long = gateway_cli("hash-password", stdin="x" * 73 + "\n")
    assert too_long.returncode == 1 and "72 bytes" in too_long.stderr


@pytest.mark.parametrize(("user", "repository", "action", "code", "output"), [
    ("alice", "myteam/app", "push", 0,
     'allow: rule 0 match "myteam/*" (the team\'s own images), granted to team:myteam'),
    ("bob", "myteam/app", "pull", 1, 'deny: rule 0 match "myteam/*" (the team\'s own images)'),
    ("-", "library/busybox", "pull", 0,
     'allow: rule 1 match "library/**" (public base images), granted to everyone (public)'),
    ("-", "myteam/app", "pull", 1, 'deny: rule 0 match "myteam/*" (the team\'s own images)'),
    ("alice", "elsewhere/app", "pull", 1, "deny: no rule matched"),
    ("carol", "elsewhere/app", "delete", 0, "allow: admin"),
    ("dave", "myteam/app", "pull", 1, "deny: disabled"),
    ("old-bot", "myteam/app", "pull", 1, "deny: expired"),
    ("mallory", "myteam/app", "pull", 1, "deny: unknown account"),
])
def test_explain(config_file: Path, user: str, repository: str, action: str, code: int,
                 output: str) -> None:
    result = gateway_cli("explain", "--config", str(config_file), user, repository, action)
    assert (result.returncode, result.stdout.strip()) == (code, output)


@pytest.mark.parametrize(("args", "code", "output"), [
    (["--groups", "platform-admins", "user:dora", "platform/app", "push"], 0,
     'allow: rule 0 match "platform/*" (the platform team), '
     "granted to team:platform via directory group platform-admins"),
    (["--groups", "other,platform-admins", "dora", "platform/app", "pull"], 0,
     'allow: rule 0 match "platform/*" (the platform team), '
     "granted to team:platform via directory group platform-admins (push grants pull)"),
    (["--groups", "other", "dora", "platform/app", "pull"], 1,
     'deny: rule 0 match "platform/*" (the platform team)'),
    (["user:dora", "home/dora/x", "push"], 0,
     'allow: rule 1 match "home/{user}/**" (own home), granted to authenticated'),
    (["alice", "home/dora/x", "pull"], 1, "deny: no rule matched"),
    (["workload:dora", "home/dora/x", "pull"], 1, 'deny: rule 1 match "home/{user}/**" (own home)'),
])
def test_explain_groups_and_personal_namespaces(tmp_path: Path, args: list[str], code: int,
                                                output: str) -> None:
    config = base_config("http://127.0.0.1:9", 5050)
    config["directory"] = {"url": "ldap://127.0.0.1:9", "bind_dn": "cn=search,dc=test",
                           "bind_password_file": str(tmp_path / "bind.pw"),
                           "user_base": "ou=people,dc=test", "group_base": "ou=groups,dc=test"}
    (tmp_path / "bind.pw").write_text("not-shown\n")
    config["teams"]["platform"] = {"members": [], "groups": ["platform-admins"]}
    config["repositories"][:0] = [
        {"match": "platform/*", "push": ["team:platform"], "comment": "the platform team"},
        {"match": "home/{user}/**", "pull": ["authenticated"], "push": ["authenticated"],
         "comment": "own home"},
    ]
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    result = gateway_cli("explain", "--config", str(path), *args)
    assert (result.returncode, result.stdout.strip()) == (code, output), result.stderr
    assert "not-shown" not in result.stdout + result.stderr


def test_explain_refuses_bad_input(config_file: Path) -> None:
    assert gateway_cli("explain", "--config", str(config_file), "alice", "Bad/Name",
                       "pull").returncode == 2
    assert gateway_cli("explain", "--config", str(config_file), "alice", "a/b",
                       "fly").returncode == 2


def test_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(base_config("http://127.0.0.1:9", port)))
        result = gateway_cli("serve", "--config", str(path))
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "address already in use" in result.stderr
    assert "Traceback" not in result.stderr
