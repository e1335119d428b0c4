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


def build_snapshot(loaded: LoadedConfig) -> Snapshot:
    accounts = build_accounts(loaded.settings, loaded.htpasswd_users)
    costs = Counter(bcrypt_cost(a.password_hash.decode()) for a in accounts.values())
    cost = costs.most_common(1)[0][0] if costs else DEFAULT_BCRYPT_COST
    return Snapshot(
        settings=loaded.settings,
        policy=Policy.build(accounts, loaded.settings.repositories),
        fingerprint=content_fingerprint(loaded),
        decision_fingerprint=content_fingerprint(loaded, NOT_DECIDING),
        dummy_hash=dummy_hash(max(cost, 4)),
        loaded_at=time.time(),
        warnings=loaded.warnings,
    )
