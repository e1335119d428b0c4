"""Config validation: every problem at once, each with its location."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.load import load_config, load_config_text
from gateway.config.problems import ConfigError

HASH = "$2b$12$6XQPojGxk4hBAFFQdrd0Y.tPSbZZ8e1FSDw3GXphjjhGDPy2Bf/UG"
LOW = "$2b$05$6XQPojGxk4hBAFFQdrd0Y.tPSbZZ8e1FSDw3GXphjjhGDPy2Bf/UG"
MINIMAL = f"""
server: {{public_url: "http://127.0.0.1:5050"}}
upstream: {{url: "http://127.0.0.1:5000"}}
token: {{service: gw}}
users:
  alice: {{password_hash: "{HASH}"}}
teams:
  myteam: {{members: [alice]}}
repositories:
  - {{match: "myteam/*", pull: ["team:myteam"]}}
"""


def problems_of(text: str, base: Path = Path(".")) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, base)
    return [str(p) for p in info.value.problems]


def test_minimal_config_loads_with_defaults() -> None:
    loaded = load_config_text(MINIMAL, Path("."))
    settings = loaded.settings
    assert settings.server.listen == "0.0.0.0:5050"
    assert settings.token.ttl == 300 and settings.token.refresh_ttl == 2592000
    assert settings.auth.lockout.max_failures == 10
    assert settings.ui.enabled and settings.cache.redis_url is None
    assert loaded.warnings == ()


def test_example_config_is_valid() -> None:
    loaded = load_config(Path(__file__).parents[2] / "config" / "gateway.yaml")
    assert len(loaded.settings.repositories) == 3


def test_every_problem_is_reported_with_its_location() -> None:
    text = f"""
server: {{public_url: "ftp://x", listen: "nope", surprise: 1}}
upstream: {{url: "http://127.0.0.1:5000"}}
token: {{service: gw, ttl: 10}}
users:
  alice: {{password_hash: "hunter2"}}
  bob: {{password_hash: "{HASH}", admin: "maybe"}}
service_accounts:
  bob: {{password_hash: "{HASH}"}}
  bot: {{password_hash: "{HASH}", expires: "2027-01-01T00:00:00"}}
teams:
  myteam: {{members: [alice, ghost]}}
repositories:
  - match: "myteam/*"
    pull: ["team:ops", "user:nobody", "service:alice", "everyone"]
  - {{match: "a/b**"}}
  - {{match: "Upper/*"}}
  - {{match: "ok/*", visibility: secret}}
"""
    problems = problems_of(text)
    expected = [
        "server.public_url: expected an http(s) URL",
        "server.listen: expected host:port, got 'nope'",
        "server.surprise: unknown key",
        "token.ttl: Input should be greater than or equal to 60",
        "users.alice.password_hash: expected a bcrypt hash",
        "users.bob.admin: Input should be a valid boolean",
        "service_accounts.bot.expires: expected a time with a zone",
        "repositories[1].match: bad glob 'a/b**'",
        "repositories[2].match: bad glob 'Upper/*'",
        "repositories[3].visibility: Input should be 'private' or 'public'",
        "service_accounts.bob: 'bob' is also a user",
        "teams.myteam.members[1]: unknown account 'ghost'",
        "repositories[0].pull[0]: unknown team 'ops'",
        "repositories[0].pull[1]: unknown user 'nobody'",
        "repositories[0].pull[2]: unknown service account 'alice'",
        "repositories[0].pull[3]: bad principal 'everyone'",
    ]
    for fragment in expected:
        assert any(p.startswith(fragment) for p in problems), (fragment, problems)
    assert len(problems) == len(expected), problems


def test_duplicate_keys_are_errors() -> None:
    text = (
        MINIMAL
        + f"""
users:
  carol: {{password_hash: "{HASH}"}}
"""
    )
    assert any("duplicate key 'users'" in p for p in problems_of(text))


def test_missing_sections() -> None:
    problems = problems_of("users: {}\n")
    assert "server: Field required" in problems
    assert "upstream: Field required" in problems
    assert "token: Field required" in problems


def test_not_yaml_and_not_a_mapping() -> None:
    assert problems_of("a: [\n")[0].startswith("not valid YAML")
    assert problems_of("- 1\n- 2\n") == ["expected a mapping at the top level"]
    assert problems_of("") == ["the file is empty"]


def test_htpasswd_users(tmp_path: Path) -> None:
    (tmp_path / "htpasswd").write_text(f"erin:{LOW}\n# comment\nfrank:{{SHA}}abc\nalice:{HASH}\n")
    text = MINIMAL + "htpasswd_file: htpasswd\n"
    problems = problems_of(text, tmp_path)
    # Issue 11: frank's SHA line is a warning now (see tests/unit/test_htpasswd_lines.py).
    assert problems == ["htpasswd_file: user 'alice' is also declared in the config"]
    (tmp_path / "htpasswd").write_text(f"erin:{LOW}\n")
    loaded = load_config_text(text.replace("[alice]", "[alice, erin]"), tmp_path)
    assert set(loaded.htpasswd_users) == {"erin"}
    assert [str(w) for w in loaded.warnings] == [
        "htpasswd_file:line 1: 'erin': bcrypt cost 5 is low (htpasswd -B defaults to 5; use -C 12)"
    ]


def test_missing_htpasswd_file(tmp_path: Path) -> None:
    problems = problems_of(MINIMAL + "htpasswd_file: nope\n", tmp_path)
    assert len(problems) == 1 and problems[0].startswith("htpasswd_file: cannot read")


def test_low_cost_hash_in_config_is_a_warning() -> None:
    loaded = load_config_text(MINIMAL.replace(HASH, LOW), Path("."))
    assert [w.location for w in loaded.warnings] == ["users.alice.password_hash"]


def test_secrets_stay_out_of_reprs() -> None:
    loaded = load_config_text(MINIMAL, Path("."))
    assert HASH not in repr(loaded.settings)
    assert HASH not in str(loaded.settings.users["alice"])


def test_files_the_config_names_are_checked(tmp_path: Path) -> None:
    (tmp_path / "short.key").write_text("too short")
    (tmp_path / "not-a-key.pem").write_text("-----BEGIN NOTHING-----\n")
    key = f"{tmp_path}/not-a-key.pem"
    text = MINIMAL.replace("token: {service: gw}", f"""token: {{service: gw, key_file: "{key}"}}
ui: {{session_secret_file: "{tmp_path}/short.key"}}""").replace(
        'server: {public_url: "http://127.0.0.1:5050"}',
        f'server: {{public_url: "http://127.0.0.1:5050", tls: {{cert: "{tmp_path}/none.crt", '
        f'key: "{tmp_path}/none.key"}}}}')
    problems = problems_of(text, tmp_path)
    assert [p.split(":")[0] for p in problems] == [
        "token.key_file", "ui.session_secret_file", "server.tls.cert", "server.tls.key"]
    assert "not an unencrypted EC P-256 PEM key" in problems[0]
    assert "needs at least 32 bytes" in problems[1]


def test_redis_url_and_sentinel_are_exclusive() -> None:
    text = MINIMAL + """cache:
  redis_url: "redis://127.0.0.1:6379/0"
  sentinel: {hosts: ["127.0.0.1:26379"], service_name: mymaster}
"""
    assert problems_of(text) == ["cache: set redis_url or sentinel, not both"]
