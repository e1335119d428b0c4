"""One immutable view of the config: settings, compiled policy and a fingerprint of its content."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from gateway.accounts import build_accounts
from gateway.authn import dummy_hash
from gateway.authz import Policy
from gateway.config import LoadedConfig, Settings
from gateway.htpasswd import bcrypt_cost
from gateway.problems import Problem

DEFAULT_BCRYPT_COST = 12


@dataclass(frozen=True)
class Snapshot:
    settings: Settings
    policy: Policy
    fingerprint: str
    dummy_hash: bytes = field(repr=False)
    loaded_at: float
    warnings: tuple[Problem, ...] = ()


def content_fingerprint(loaded: LoadedConfig) -> str:
    """A hash of what the config says (not of its layout), so equal configs agree across replicas."""
    canonical = json.dumps(
        {"config": loaded.raw, "htpasswd": sorted(loaded.htpasswd_text.splitlines())},
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def build_snapshot(loaded: LoadedConfig) -> Snapshot:
    accounts = build_accounts(loaded.settings, loaded.htpasswd_users)
    costs = Counter(bcrypt_cost(a.password_hash.decode()) for a in accounts.values())
    cost = costs.most_common(1)[0][0] if costs else DEFAULT_BCRYPT_COST
    return Snapshot(
        settings=loaded.settings,
        policy=Policy.build(accounts, loaded.settings.repositories),
        fingerprint=content_fingerprint(loaded),
        dummy_hash=dummy_hash(max(cost, 4)),
        loaded_at=time.time(),
        warnings=loaded.warnings,
    )
