"""check-config for `sso`, `federation` and `workload:` principals: every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.config.load import load_config_text
from gateway.config.problems import ConfigError

HASH = "$2b$12$6XQPojGxk4hBAFFQdrd0Y.tPSbZZ8e1FSDw3GXphjjhGDPy2Bf/UG"
GITHUB = "https://token.actions.githubusercontent.com"


def config(**sections: object) -> str:
    data: dict[str, object] = {
        "server": {"public_url": "http://127.0.0.1:5050"},
        "upstream": {"url": "http://127.0.0.1:5000"},
        "token": {"service": "gw"},
        "users": {"alice": {"password_hash": HASH}},
    }
    data.update(sections)
    return yaml.safe_dump(data)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, Path("."))
    return [str(p) for p in info.value.problems]


def entry(name: str = "app-release", **overrides: object) -> dict[str, object]:
    return {"name": name, "issuer": GITHUB, "audience": "gw",
            "claims": {"repository_owner_id": "1", "repository": "acme/app"}, **overrides}


def test_a_pinned_entry_and_its_workload_principal_load_without_warnings() -> None:
    loaded = load_config_text(config(federation=[entry()], repositories=[
        {"match": "ci/*", "push": ["workload:app-release"]}]), Path("."))
    assert loaded.warnings == ()
    assert loaded.settings.federation[0].claims["repository"] == "acme/app"


def test_every_federation_problem_is_listed_at_once() -> None:
    problems = problems_of(config(
        federation=[
            entry(claims={}),
            entry("Alice"),
            entry("dup"), entry("DUP"),
            entry("plain", issuer="http://ci.example.com"),
            entry("bad name!"),
        ],
        repositories=[{"match": "ci/*", "push": ["workload:ghost", "workload:app-release"]}]))
    assert problems == [
        "repositories[0].push[0]: unknown workload (no federation entry) 'ghost'",
        "federation[0].claims: an entry must pin claims: its issuer signs tokens for everybody "
        "it serves",
        "federation[1].name: 'Alice' is also a local account (names are compared "
        "case-insensitively)",
        "federation[3].name: duplicate federation entry 'DUP'",
        "federation[4].issuer: must be https:// (http:// only to a loopback address)",
        "federation[5].name: names use letters, digits, '.', '_', '@', '-'",
    ]


def test_an_entry_without_an_immutable_id_is_a_warning() -> None:
    loaded = load_config_text(config(federation=[
        entry(claims={"repository": "acme/app", "ref": "refs/heads/main"}),
        entry("globbed", claims={"repository_owner_id": "12*"}),
        entry("gitlab", issuer="https://gitlab.example.com", claims={"namespace_id": "42"}),
        entry("local", issuer="http://127.0.0.1:8080", claims={"project_id": "7"}),
    ]), Path("."))
    assert [w.location for w in loaded.warnings] == ["federation[0].claims", "federation[1].claims"]
    assert "pins no immutable id" in loaded.warnings[0].message


def test_sso_issuer_secret_file_and_ca_files_are_checked(tmp_path: Path) -> None:
    empty = tmp_path / "empty.secret"
    empty.write_text("\n")
    not_ca = tmp_path / "not-a-ca.pem"
    not_ca.write_text("hello")
    problems = problems_of(config(
        sso={"issuer": "http://idp.example.com", "client_id": "gw",
             "client_secret_file": str(empty), "ca_file": str(not_ca), "cli_token_ttl": 3600},
        federation=[entry(ca_file=str(tmp_path / "missing.pem"))]))
    assert problems[0] == "sso.issuer: must be https:// (http:// only to a loopback address)"
    assert problems[1] == f"sso.client_secret_file: {str(empty)!r} is empty"
    assert problems[2].startswith("federation[0].ca_file: cannot load CA certificates from")
    assert problems[3].startswith("sso.ca_file: cannot load CA certificates from")
    assert len(problems) == 4


def test_cli_token_ttl_is_thirty_days_at_most(tmp_path: Path) -> None:
    secret = tmp_path / "sso.secret"
    secret.write_text("s3cret")
    sso = {"issuer": "https://idp.example.com", "client_id": "gw", "client_secret_file": str(secret)}
    assert load_config_text(config(sso={**sso, "cli_token_ttl": 30 * 86400}), Path("."))
    assert problems_of(config(sso={**sso, "cli_token_ttl": 30 * 86400 + 1})) == [
        "sso.cli_token_ttl: Input should be less than or equal to 2592000"]
