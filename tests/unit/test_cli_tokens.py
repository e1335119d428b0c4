"""CLI passwords and SSO identities (unit: no I/O): expiry, tampering, key change, not_before,
names taken or claimed twice, and what the refresh and access tokens of such identities carry."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from gateway.config.load import load_config_text
from gateway.identity.cli_tokens import PREFIX, CliPasswords, CliTokens
from gateway.identity.failures import AuthFailure
from gateway.identity.sso_names import Binding, SsoNames, issuer_tag, subject_key
from gateway.keys import SigningKey
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot, build_snapshot
from gateway.tokens import TokenAuthority

HASH = "$2b$04$6XQPojGxk4hBAFFQdrd0Y.tPSbZZ8e1FSDw3GXphjjhGDPy2Bf/UG"
ISSUER = "https://idp.example.com"
NOW = 1_900_000_000.0


def snapshot(tmp_path: Path, **sso: Any) -> Snapshot:
    secret = tmp_path / "sso.secret"
    secret.write_text("s3cret")
    data = {
        "server": {"public_url": "http://127.0.0.1:5050"},
        "upstream": {"url": "http://127.0.0.1:5000"},
        "token": {"service": "gw"},
        "users": {"alice": {"password_hash": HASH}},
        "sso": {"issuer": ISSUER, "client_id": "gw", "client_secret_file": str(secret), **sso},
        "teams": {"platform": {"groups": ["platform"]}},
    }
    return build_snapshot(load_config_text(yaml.safe_dump(data), tmp_path))


def erin(issued: float = NOW, sub: str = "u-1001") -> Subject:
    binding = Binding(int(issued), issuer_tag(ISSUER), subject_key(ISSUER, sub)).format()
    return Subject("erin", "sso", frozenset({"platform"}), binding=binding)


def test_a_cli_password_reads_back_until_it_expires() -> None:
    tokens = CliTokens(b"k" * 32)
    password, exp = tokens.issue(erin(), 600, now=NOW)
    assert password.startswith(PREFIX) and exp == int(NOW) + 600
    claims = tokens.read(password, now=NOW + 599)
    assert claims is not None and claims.name == "erin" and claims.groups == {"platform"}
    assert claims.subject().binding.startswith(f"{int(NOW)}.")
    assert tokens.read(password, now=NOW + 600) is None  # expired
    assert tokens.read(password, now=NOW - 120) is None  # issued "in the future"
    assert "erin" in repr(claims) and password not in repr(claims)


@pytest.mark.parametrize("mangle", [
    lambda p: p + "x",
    lambda p: p.replace(PREFIX, "rgcli2_"),
    lambda p: p[:-2],
    lambda p: p.partition(".")[0] + "." + "A" * 43,
    lambda p: PREFIX + "e30." + p.partition(".")[2],  # "{}" with the old MAC
    lambda p: "x" * 5000,
    lambda p: "",
])
def test_tampered_cli_passwords_are_refused(mangle: Any) -> None:
    tokens = CliTokens(b"k" * 32)
    password, _ = tokens.issue(erin(), 600, now=NOW)
    assert tokens.read(mangle(password), now=NOW) is None


def test_a_token_key_change_ends_every_cli_password() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    password, _ = CliTokens(old.secret(b"cli")).issue(erin(), 600, now=NOW)
    assert CliTokens(old.secret(b"cli")).read(password, now=NOW) is not None
    assert CliTokens(new.secret(b"cli")).read(password, now=NOW) is None


def test_only_sso_identities_get_cli_passwords() -> None:
    with pytest.raises(ValueError):
        CliTokens(b"k" * 32).issue(Subject("alice"), 600)


async def test_backend_checks_name_not_before_and_sso(tmp_path: Path) -> None:
    tokens, names = CliTokens(b"k" * 32), SsoNames()
    backend = CliPasswords(tokens, names)
    password, _ = tokens.issue(erin(issued=time.time()), 600)
    current = snapshot(tmp_path)
    assert backend.claims(current, "erin", password) and not backend.claims(current, "erin", "pw")
    subject = await backend.verify(current, "erin", password)
    assert isinstance(subject, Subject) and subject.kind == "sso" and subject.groups == {"platform"}
    assert subject.expires_at is not None and subject.expires_at <= time.time() + 600
    assert await backend.verify(current, "frank", password) is AuthFailure.BAD_TOKEN
    later = datetime.fromtimestamp(time.time() + 60, UTC).isoformat()
    refused = snapshot(tmp_path, not_before={"Erin": later})
    assert await backend.verify(refused, "erin", password) is AuthFailure.BAD_TOKEN
    other_provider = snapshot(tmp_path, issuer="https://other.example.com")
    assert await backend.verify(other_provider, "erin", password) is AuthFailure.BAD_TOKEN


async def test_two_subjects_claiming_one_name_are_both_refused(tmp_path: Path) -> None:
    names, current = SsoNames(), snapshot(tmp_path)
    first = names.identity(current, ISSUER, "u-1", {"preferred_username": "heidi"})
    assert isinstance(first, Subject) and first.name == "heidi" and first.groups == frozenset()
    assert names.identity(current, ISSUER, "u-1", {"preferred_username": "heidi"}) != "name_contested"
    assert names.identity(current, ISSUER, "u-2", {"preferred_username": "Heidi"}) == "name_contested"
    assert await names.recheck(current, first) is AuthFailure.BAD_TOKEN  # the first one too now


@pytest.mark.parametrize(("claims", "result"), [
    ({"preferred_username": "ALICE"}, "name_taken"),  # a local account, any case
    ({"preferred_username": "no spaces"}, "bad_name"),
    ({"preferred_username": 7}, "bad_name"),
    ({}, "bad_name"),
])
def test_unusable_names_are_refused(tmp_path: Path, claims: dict[str, Any], result: str) -> None:
    assert SsoNames().identity(snapshot(tmp_path), ISSUER, "u-9", claims) == result


def test_groups_kept_are_the_ones_the_config_acts_on(tmp_path: Path) -> None:
    subject = SsoNames().identity(snapshot(tmp_path, admin_groups=["admins"]), ISSUER, "u-3", {
        "preferred_username": "gina", "groups": ["platform", "admins", "everyone", 3]})
    assert isinstance(subject, Subject) and subject.groups == {"platform", "admins"}


def test_identity_tokens_end_with_their_credential() -> None:
    authority = TokenAuthority(SigningKey.generate(), "gw", "iss", 300, 86400)
    short = Subject("erin", "sso", frozenset({"platform"}), expires_at=time.time() + 100,
                    binding=erin().binding)
    refresh = authority.issue_identity_refresh(short)
    assert refresh is not None
    claims = authority.verify_refresh(refresh)
    assert claims.kind == "sso" and claims.binding == short.binding
    assert claims.expires_at <= time.time() + 100 and claims.groups == {"platform"}
    access = authority.issue_access(short, [], False)
    assert access.expires_in <= 100
    assert jwt.decode(access.token, options={"verify_signature": False})["exp"] <= short.expires_at
    workload = Subject("ci", "workload", expires_at=time.time() + 100)
    assert authority.issue_identity_refresh(workload) is None
    assert authority.issue_identity_refresh(Subject("erin", "sso")) is None  # no binding
