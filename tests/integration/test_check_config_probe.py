"""`check-config --probe` against the session's real slapd: the search account, the bases, and
the names that `user:` principals and team members give with no local account.

Run as a user would (`python -m gateway check-config --probe`); the directory users named here
are erin and heidi (tests/support/ldap/people.ldif), zed is in no directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import Slapd, free_port
from support.gateway import base_config

from gateway.cli import build_parser
from gateway.config.load import load_config_text
from gateway.config.problems import ConfigError


def probe_config(slapd: Slapd, tmp_path: Path, password: str | None = None,
                 **directory: Any) -> Path:
    secret = tmp_path / "bind-password"
    secret.write_text((slapd.bind_password if password is None else password) + "\n")
    config = base_config("http://127.0.0.1:9", 5050)
    config["directory"] = {
        "url": slapd.url, "bind_dn": slapd.bind_dn, "bind_password_file": str(secret),
        "user_base": slapd.user_base, "group_base": slapd.group_base, "timeout": 2,
        **directory,
    }
    config["teams"]["platform"] = {"members": ["erin"], "groups": ["platform"]}
    config["repositories"].append({"match": "platform/*", "pull": ["team:platform", "user:heidi"]})
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def check(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "check-config", "--config", str(path),
                           *extra], capture_output=True, text=True, timeout=60, env=os.environ)


def lines(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


def test_a_good_probe_binds_finds_the_bases_and_the_names(slapd: Slapd, tmp_path: Path) -> None:
    path = probe_config(slapd, tmp_path)
    plain = check(path)
    assert plain.returncode == 0, plain.stderr
    assert "probe:" not in plain.stdout + plain.stderr  # the directory is asked only with --probe
    assert lines(plain.stderr, "'erin' is no local account") == [
        "warning: teams.platform.members[0]: 'erin' is no local account: it must come from the "
        "directory or single sign-on (check-config --probe looks it up)"]
    result = check(path, "--probe")
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout, "probe:") == [
        f"probe: {slapd.url}: the search account {slapd.bind_dn} binds",
        f"probe: user_base {slapd.user_base}: exists",
        f"probe: group_base {slapd.group_base}: exists",
        f"probe: 'erin' (teams.platform.members[0]): found (uid=erin,{slapd.user_base})",
        f"probe: 'heidi' (repositories[2].pull[1]): found (cn=Hall\\2C Heidi,{slapd.user_base})",
    ]
    assert lines(result.stderr, "probe:") == []
    assert slapd.bind_password not in result.stdout + result.stderr


def test_a_wrong_bind_password_is_a_problem_and_never_printed(slapd: Slapd, tmp_path: Path) -> None:
    result = check(probe_config(slapd, tmp_path, password="not-the-bind-password"), "--probe")
    assert result.returncode == 1
    assert f"problem: probe: {slapd.url}: the search account was refused" in result.stderr
    assert "the probe found" in result.stderr and "problem(s)" in result.stderr
    assert "not-the-bind-password" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_base_is_a_problem(slapd: Slapd, tmp_path: Path) -> None:
    missing = "ou=nobody,dc=example,dc=org"
    result = check(probe_config(slapd, tmp_path, user_base=missing), "--probe")
    assert result.returncode == 1
    assert lines(result.stderr, "problem: probe:") == [
        f"problem: probe: user_base {missing}: no such entry (or the search account cannot read it)"]
    assert f"probe: group_base {slapd.group_base}: exists" in result.stdout
    assert "found 1 problem(s)" in result.stderr


def test_an_unreachable_directory_is_a_problem_with_a_clear_message(slapd: Slapd,
                                                                     tmp_path: Path) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    result = check(probe_config(slapd, tmp_path, url=dead), "--probe")
    assert result.returncode == 1
    [problem] = lines(result.stderr, "problem: probe:")
    assert problem.startswith(f"problem: probe: {dead}: LDAPSocketOpenError")
    assert "refused" in problem.lower()
    assert f"warning: probe: user_base {slapd.user_base}: not checked" in result.stderr
    assert "warning: probe: 2 names with no local account not looked up" in result.stderr
    assert slapd.bind_password not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    # A second URL that answers: the dead one is still a problem, the names are looked up.
    both = check(probe_config(slapd, tmp_path, url=[dead, slapd.url]), "--probe")
    assert both.returncode == 1
    assert "probe: 'erin' (teams.platform.members[0]): found" in both.stdout


def test_an_unknown_member_name_is_a_warning(slapd: Slapd, tmp_path: Path) -> None:
    path = probe_config(slapd, tmp_path)
    config = yaml.safe_load(path.read_text())
    config["teams"]["platform"]["members"] += ["zed", "ERIN"]
    path.write_text(yaml.safe_dump(config))
    result = check(path, "--probe")
    assert result.returncode == 0, result.stderr
    assert lines(result.stderr, "warning: probe:") == [
        "warning: probe: 'zed' (teams.platform.members[1]): not in the directory (no single "
        "entry under user_base matches user_filter and this name)",
        f"warning: probe: 'ERIN' (teams.platform.members[2]): found as 'erin' "
        f"(uid=erin,{slapd.user_base}): rules and teams must name it 'erin', as the directory "
        "spells it",
    ]


def test_without_a_directory_there_is_nothing_to_probe(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(base_config("http://127.0.0.1:9", 5050)))
    result = check(path, "--probe")
    assert result.returncode == 0, result.stderr
    assert "probe: no `directory` configured: nothing to probe" in result.stdout


@pytest.mark.parametrize("probe", [(), ("--probe",)])
def test_an_unreadable_password_file_and_a_clear_text_url_are_problems_at_once(
        slapd: Slapd, tmp_path: Path, probe: tuple[str, ...]) -> None:
    """Config problems, found when the config loads (so with or without --probe, and at start
    and on reload too): nothing is probed until the section is usable."""
    path = probe_config(slapd, tmp_path, url="ldap://ldap.example.org")
    (tmp_path / "bind-password").unlink()
    result = check(path, *probe)
    assert result.returncode == 1
    assert f"{path}: 2 problem(s):" in result.stderr
    assert lines(result.stderr, "directory.") == [
        "  directory.url: ldap://ldap.example.org: passwords would travel in clear text; use "
        "ldaps:// or start_tls",
        f"  directory.bind_password_file: cannot read {str(tmp_path / 'bind-password')!r}: "
        "No such file or directory"]
    assert "probe:" not in result.stdout + result.stderr
    empty = check(probe_config(slapd, tmp_path, password=""), *probe)
    assert empty.returncode == 1
    assert "directory.bind_password_file:" in empty.stderr
    assert "is empty" in empty.stderr


def test_probe_is_a_flag_of_check_config() -> None:
    parser = build_parser()
    assert parser.parse_args(["check-config", "--probe"]).probe is True
    assert parser.parse_args(["check-config", "--config", "x.yaml"]).probe is False
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--probe"])


@pytest.mark.parametrize("section", ["directory", None])
def test_names_with_no_local_account_are_warnings_only_with_a_directory(
        section: str | None, tmp_path: Path) -> None:
    config = base_config("http://127.0.0.1:9", 5050)
    config["teams"]["myteam"]["members"].append("zed")
    config["repositories"][0]["push"].append("user:yan")
    config["repositories"][0]["delete"].append("user:Alice")  # a login refuses it: local alice
    if section:
        (tmp_path / "pw").write_text("secret\n")
        config[section] = {"url": "ldap://127.0.0.1", "bind_dn": "cn=x",
                           "bind_password_file": str(tmp_path / "pw"), "user_base": "o=x",
                           "group_base": "o=x"}
    text = yaml.safe_dump(config)
    if section is None:
        with pytest.raises(ConfigError) as info:
            load_config_text(text, tmp_path)
        assert [str(p) for p in info.value.problems] == [
            "teams.myteam.members[2]: unknown account 'zed'",
            "repositories[0].push[1]: unknown user 'yan'",
            "repositories[0].delete[1]: unknown user 'Alice'"]
        return
    with pytest.raises(ConfigError) as refused:
        load_config_text(text, tmp_path)
    assert [str(p) for p in refused.value.problems] == [
        "repositories[0].delete[1]: unknown user 'Alice'"]
    config["repositories"][0]["delete"].pop()
    text = yaml.safe_dump(config)
    warnings = [str(w) for w in load_config_text(text, tmp_path).warnings if "local" in str(w)]
    assert [w.split(":")[0] for w in warnings] == ["teams.myteam.members[2]",
                                                   "repositories[0].push[1]"]
