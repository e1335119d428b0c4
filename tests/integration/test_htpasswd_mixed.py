"""Issue 11, defect 7, end to end: a gateway whose htpasswd file has non-bcrypt lines.

It starts; the bcrypt users log in; the others cannot (their names stay local, so never reach
a directory); check-config exits 0 and lists the refused lines as warnings; the log says which
lines and why; a metric counts them. A reload after `htpasswd -b` (MD5 on Debian) applies the
rest of the file instead of being refused as a whole.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from support import Slapd, free_port, run_command
from support.credentials import basic
from support.gateway import base_config, running_gateway
from support.ops import http_answer
from support.slapd import user_dn

PASSWORD = {"erin": "erin-bcrypt", "heidi": "heidi-md5", "sha-user": "sha-pw",
            "crypt-user": "crypt-pw", "newbie": "newbie-pw"}


def add_line(path: Path, flags: list[str], user: str) -> None:
    """`htpasswd -b FILE USER PASSWORD` with `flags` (none: the Debian default, MD5)."""
    run_command(["htpasswd", "-b", *flags, str(path), user, PASSWORD[user]])


def mixed_file(path: Path) -> None:
    path.write_text("")
    add_line(path, ["-B", "-C", "4"], "erin")
    add_line(path, ["-m"], "heidi")
    add_line(path, ["-s"], "sha-user")
    add_line(path, ["-d"], "crypt-user")


def config_with(upstream: str, port: int, htpasswd: Path,
                members: tuple[str, ...] = ()) -> dict[str, Any]:
    config = base_config(upstream, port)
    config["htpasswd_file"] = str(htpasswd)
    config["teams"]["myteam"]["members"] += list(members)  # refused names are accounts too
    return config


def login_status(port: int, user: str, password: str | None = None) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/token?service=gateway.test",
        headers=basic(user, password or PASSWORD[user]))
    return http_answer(request, timeout=10)[0]


def metric_total(port: int, fragment: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if fragment in s.name and not s.name.endswith("_created"))


def test_the_gateway_serves_the_bcrypt_lines_and_refuses_the_others(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    mixed_file(htpasswd)
    port = free_port()
    config = config_with("http://127.0.0.1:9", port, htpasswd, ("erin", "heidi"))
    with running_gateway(config, tmp_path / "gw", port) as gateway:
        assert login_status(port, "erin") == 200
        for user in ("heidi", "sha-user", "crypt-user"):
            assert login_status(port, user) == 401, user
        log = gateway.log_text()
        for number, user in ((2, "heidi"), (3, "sha-user"), (4, "crypt-user")):
            assert any(f"line {number}" in line and user in line for line in log.splitlines()), \
                (user, gateway.log_tail())
        assert metric_total(port, "htpasswd") == 3
        assert PASSWORD["heidi"] not in log


def test_check_config_warns_and_exits_0(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    mixed_file(htpasswd)
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(config_with("http://127.0.0.1:9", 5050, htpasswd,
                                                 ("erin", "heidi"))))
    result = subprocess.run([sys.executable, "-m", "gateway", "check-config", "--config",
                             str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    for user in ("heidi", "sha-user", "crypt-user"):
        assert user in output, output


def test_a_reload_after_htpasswd_b_applies_the_rest(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("")
    add_line(htpasswd, ["-B", "-C", "4"], "erin")
    port = free_port()
    with running_gateway(config_with("http://127.0.0.1:9", port, htpasswd), tmp_path / "gw",
                         port) as gateway:
        add_line(htpasswd, [], "heidi")  # what the nginx recipe's `htpasswd -b` writes: MD5
        add_line(htpasswd, ["-B", "-C", "4"], "newbie")
        gateway.reload()
        deadline = time.monotonic() + 10
        while login_status(port, "newbie") != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert login_status(port, "newbie") == 200, gateway.log_tail()
        assert login_status(port, "erin") == 200
        assert login_status(port, "heidi") == 401
        assert metric_total(port, "config_reloads_total") >= 1
        assert "refused" not in gateway.log_tail(5).lower(), gateway.log_tail()


def test_a_refused_name_is_never_asked_of_the_directory(tmp_path: Path, slapd: Slapd) -> None:
    """erin exists in the directory with a password of her own; her htpasswd line (apr1) is
    refused, and her name stays local: the directory password does not log her in, and no
    bind for her DN is made."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("")
    add_line(htpasswd, ["-m"], "erin")
    bind_password = tmp_path / "bind.pw"
    bind_password.write_text(slapd.bind_password)
    bind_password.chmod(0o600)
    port = free_port()
    config = config_with("http://127.0.0.1:9", port, htpasswd)
    config["directory"] = {"url": slapd.url, "bind_dn": slapd.bind_dn,
                           "bind_password_file": str(bind_password),
                           "user_base": slapd.user_base, "group_base": slapd.group_base}
    binds_before = slapd.binds(user_dn("erin"))
    with running_gateway(config, tmp_path / "gw", port):
        assert login_status(port, "erin", slapd.passwords["erin"]) == 401
    assert slapd.binds(user_dn("erin")) == binds_before
