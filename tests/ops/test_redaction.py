"""Secret-holding values never show their secret in repr(), str() or an exception (and its cause)."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from support.gateway import PASSWORDS, base_config, password_hash

from gateway.config.htpasswd import parse_htpasswd
from gateway.config.load import load_config_text
from gateway.config.problems import ConfigError
from gateway.identity.credentials import BasicCredentials, BearerCredentials, parse_authorization
from gateway.keys import SigningKey
from gateway.policy.accounts import build_accounts
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import build_snapshot
from gateway.tokens import TokenAuthority, TokenError

KEY = SigningKey.generate()
ALICE = Subject("alice")
AUTHORITY = TokenAuthority(KEY, "gateway.test", "registry-gateway-test", 300, 3600)


def everything_shown(value: object) -> str:
    return f"{value!r}\n{value!s}"


def exception_text(exc: BaseException) -> str:
    """What a log line with the traceback would show, causes and contexts included."""
    return "".join(traceback.format_exception(exc))


def config_text(tmp_path: Path, **changes: Any) -> str:
    config = base_config("http://127.0.0.1:5000", 5050)
    config.update(changes)
    return yaml.safe_dump(config)


def test_credentials_hide_passwords_and_tokens() -> None:
    basic = BasicCredentials("alice", "correct horse battery")
    assert "correct horse" not in everything_shown(basic)
    assert "alice" in repr(basic)  # the username is not a secret and helps debugging
    token = AUTHORITY.issue_access(ALICE, [], catalog=False).token
    assert token not in everything_shown(BearerCredentials(token))
    assert token not in everything_shown(parse_authorization(f"Bearer {token}"))


def test_issued_tokens_hide_the_token() -> None:
    issued = AUTHORITY.issue_access(ALICE, [], catalog=True)
    assert issued.token not in everything_shown(issued)
    assert str(issued.expires_in) in repr(issued)


def test_signing_key_hides_the_private_key() -> None:
    secret = str(KEY.private_key.private_numbers().private_value)
    assert secret not in everything_shown(KEY)
    assert "PRIVATE" not in everything_shown(KEY)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-4] + "AAAA",  # bad signature
    lambda t: t.replace(".", "!", 1),  # not a JWT
    lambda t: t + "garbage",
])
def test_token_errors_never_quote_the_token(mangle: Any) -> None:
    token = mangle(AUTHORITY.issue_access(ALICE, [], catalog=False).token)
    with pytest.raises(TokenError) as caught:
        AUTHORITY.verify_access(token)
    text = exception_text(caught.value)
    assert token not in text
    assert token.split(".")[1] not in text  # not even the claims part


def test_expired_and_foreign_tokens_are_not_quoted() -> None:
    other = TokenAuthority(SigningKey.generate(), "gateway.test", "registry-gateway-test", 300, 3600)
    foreign = other.issue_access(ALICE, [], catalog=False).token
    expired = jwt.encode({"sub": "alice", "exp": 1, "nbf": 0, "iat": 0, "iss": "registry-gateway-test",
                          "aud": "gateway.test", "jti": "x", "access": []},
                         KEY.private_key, algorithm="ES256", headers={"kid": KEY.kid, "typ": "JWT"})
    for token in (foreign, expired):
        with pytest.raises(TokenError) as caught:
            AUTHORITY.verify_access(token)
        assert token not in exception_text(caught.value)
    refresh = AUTHORITY.issue_refresh("alice", b"hash")
    with pytest.raises(TokenError) as caught:
        AUTHORITY.verify_access(refresh)  # a refresh token where an access token belongs
    assert refresh not in exception_text(caught.value)


def test_accounts_and_htpasswd_entries_hide_hashes(tmp_path: Path) -> None:
    loaded = load_config_text(config_text(tmp_path), base_dir=tmp_path)
    accounts = build_accounts(loaded.settings, loaded.htpasswd_users)
    hashes = [password_hash(p) for p in PASSWORDS.values()]
    for account in accounts.values():
        shown = everything_shown(account)
        assert not any(h in shown for h in hashes)
        assert account.password_hash.decode() not in shown
    entries, _ = parse_htpasswd(f"alice:{hashes[0]}\n")
    assert hashes[0] not in everything_shown(entries["alice"])


def test_loaded_config_and_snapshot_hide_hashes(tmp_path: Path) -> None:
    loaded = load_config_text(config_text(tmp_path), base_dir=tmp_path)
    snapshot = build_snapshot(loaded)
    hashes = [password_hash(p) for p in PASSWORDS.values()]
    for value in (loaded, loaded.settings, snapshot, snapshot.policy,
                  loaded.settings.model_dump_json(), loaded.settings.model_dump()):
        shown = everything_shown(value)
        leaked = [h for h in hashes if h in shown]
        assert not leaked, type(value).__name__
    assert snapshot.dummy_hash.decode() not in everything_shown(snapshot)


def test_a_plaintext_password_in_the_config_is_never_echoed(tmp_path: Path) -> None:
    plaintext = "Plain-Text-Password-9a7"
    text = config_text(tmp_path, users={"alice": {"password_hash": plaintext}},
                       service_accounts={"ci-bot": {"password_hash": plaintext + "x"}})
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, base_dir=tmp_path)
    shown = exception_text(caught.value) + "\n".join(str(p) for p in caught.value.problems)
    assert plaintext not in shown
    assert "users.alice.password_hash" in shown  # the location is still named
