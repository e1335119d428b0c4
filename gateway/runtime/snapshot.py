"""One immutable view of the config: settings, compiled policy and a fingerprint of its content."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

import bcrypt

from gateway.config.htpasswd import DEFAULT_BCRYPT_COST, bcrypt_cost
from gateway.config.identity_checks import taken_names
from gateway.config.load import LoadedConfig
from gateway.config.problems import Problem
from gateway.config.schema import Settings
from gateway.policy.accounts import build_accounts
from gateway.policy.decide import Policy

# Sections no access decision reads: replicas whose files differ only there (each its own listen
# address, say) share cached decisions, and editing them keeps the decision cache warm.
NOT_DECIDING = ("server", "upstream", "token", "cache", "config_watch", "auth", "audit", "ui",
                "htpasswd_file")


@dataclass(frozen=True)
class Snapshot:
    settings: Settings
    policy: Policy
    fingerprint: str
    decision_fingerprint: str  # of what decides access; the decision cache's keys carry it
    dummy_hash: bytes = field(repr=False)
    loaded_at: float
    warnings: tuple[Problem, ...] = ()
    taken_names: frozenset[str] = frozenset()  # config.identity_checks.taken_names


def content_fingerprint(loaded: LoadedConfig, exclude: tuple[str, ...] = ()) -> str:
    """A hash of what the config says (not of its layout), so equal configs agree across replicas."""
    config = {key: value for key, value in loaded.raw.items() if key not in exclude}
    canonical = json.dumps(
        {"config": config, "htpasswd": sorted(loaded.htpasswd_text.splitlines())},
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def dummy_hash(cost: int) -> bytes:
    """A hash no password matches, of the accounts' cost, so unknown users take as long."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))


def build_snapshot(loaded: LoadedConfig) -> Snapshot:
    accounts = build_accounts(loaded.settings, loaded.htpasswd_users)
    costs = Counter(bcrypt_cost(a.password_hash.decode()) for a in accounts.values())
    cost = costs.most_common(1)[0][0] if costs else DEFAULT_BCRYPT_COST
    return Snapshot(
        settings=loaded.settings,
        policy=Policy.build(accounts, loaded.settings.repositories, loaded.settings.teams,
                            loaded.settings.disabled_identities),
        fingerprint=content_fingerprint(loaded),
        decision_fingerprint=content_fingerprint(loaded, NOT_DECIDING),
        dummy_hash=dummy_hash(max(cost, 4)),
        loaded_at=time.time(),
        warnings=loaded.warnings,
        taken_names=taken_names(loaded.settings, loaded.htpasswd_users),
    )
