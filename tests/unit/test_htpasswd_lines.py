"""Issue 11, defect 7: an htpasswd file from the nginx recipe loads line by line.

Lines made by `htpasswd -m` (apr1), `-s` (SHA), `-d` (crypt) or `-p` (plain) are refused one by
one, as warnings that say which line and why; the bcrypt lines load; a refused name stays a
local account (a team may name it, and it never falls through to another backend); one bad line
never makes the whole file, and so the config, invalid. The hashes come from the real
`htpasswd` (apache2-utils).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import run_command

from gateway.config.load import load_config_text
from gateway.config.problems import ConfigError

HASH = "$2b$12$6XQPojGxk4hBAFFQdrd0Y.tPSbZZ8e1FSDw3GXphjjhGDPy2Bf/UG"
CONFIG = f"""
server: {{public_url: "http://127.0.0.1:5050"}}
upstream: {{url: "http://127.0.0.1:5000"}}
token: {{service: gw}}
users:
  alice: {{password_hash: "{HASH}"}}
teams:
  myteam: {{members: [alice, MEMBERS]}}
repositories:
  - {{match: "myteam/*", pull: ["team:myteam"], push: ["user:PUSHER"]}}
htpasswd_file: htpasswd
"""
FLAGS = {"bcrypt": "-nbB", "apr1": "-nbm", "sha": "-nbs", "crypt": "-nbd", "plain": "-nbp"}
REFUSED = ("apr1", "sha", "crypt", "plain")


def line(kind: str, user: str) -> str:
    flags = [FLAGS[kind], *(["-C", "4"] if kind == "bcrypt" else [])]
    return run_command(["htpasswd", *flags, user, f"{user}-pw"]).stdout.strip()


def write(tmp_path: Path, lines: list[str]) -> None:
    (tmp_path / "htpasswd").write_text("\n".join(lines) + "\n")


def config(members: str, pusher: str = "alice") -> str:
    return CONFIG.replace("MEMBERS", members).replace("PUSHER", pusher)


def refused_file(tmp_path: Path) -> None:
    write(tmp_path, ["# from the nginx recipe", line("bcrypt", "erin"), "",
                     *(line(kind, f"{kind}-user") for kind in REFUSED), line("bcrypt", "grace")])


def test_refused_lines_are_warnings_and_bcrypt_lines_load(tmp_path: Path) -> None:
    refused_file(tmp_path)
    loaded = load_config_text(config("erin, grace"), tmp_path)
    assert {"erin", "grace"} <= set(loaded.htpasswd_users)
    warnings = [str(w) for w in loaded.warnings]
    for number, kind in enumerate(REFUSED, start=4):  # lines 4..7 of the file
        found = [w for w in warnings if f"line {number}" in w and f"{kind}-user" in w]
        assert found, (kind, warnings)
        assert "bcrypt" in found[0], found  # says why, and what to use instead


@pytest.mark.parametrize("kind", REFUSED)
def test_a_refused_name_stays_a_local_account(tmp_path: Path, kind: str) -> None:
    refused_file(tmp_path)
    # A team member or principal naming it is no reference to an unknown account.
    load_config_text(config(f"{kind}-user", pusher=f"{kind}-user"), tmp_path)


def test_an_unknown_member_is_still_an_error(tmp_path: Path) -> None:
    """The reservation covers refused lines only (passes today)."""
    write(tmp_path, [line("bcrypt", "erin")])
    with pytest.raises(ConfigError) as info:
        load_config_text(config("nobody"), tmp_path)
    assert any("nobody" in str(p) for p in info.value.problems)


def test_one_line_of_each_kind_never_fails_the_file(tmp_path: Path) -> None:
    for kind in REFUSED:
        write(tmp_path, [line("bcrypt", "erin"), line(kind, "someone")])
        loaded = load_config_text(config("erin"), tmp_path)
        assert "erin" in loaded.htpasswd_users, kind


def test_an_all_bcrypt_file_has_no_warnings_about_lines(tmp_path: Path) -> None:
    write(tmp_path, [line("bcrypt", "erin"), line("bcrypt", "grace")])
    loaded = load_config_text(config("erin, grace"), tmp_path)
    assert not [w for w in loaded.warnings if "only bcrypt" in str(w)]
