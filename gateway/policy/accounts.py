"""Local accounts as the decision sees them: who exists, in which state (teams: `Policy`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Literal

from gateway.config.htpasswd import HtpasswdEntry
from gateway.config.schema import Settings

AccountKind = Literal["user", "service"]


class AccountState(Enum):
    ACTIVE = "active"
    DISABLED = "disabled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    kind: AccountKind
    password_hash: bytes = field(repr=False)
    admin: bool = False
    disabled: bool = False
    expires: datetime | None = None

    def state(self, now: datetime) -> AccountState:
        if self.disabled:
            return AccountState.DISABLED
        if self.expires is not None and now >= self.expires:
            return AccountState.EXPIRED
        return AccountState.ACTIVE


def build_accounts(
    settings: Settings, htpasswd_users: Mapping[str, HtpasswdEntry]
) -> dict[str, Account]:
    """All local accounts by name (who is in which team is `Policy.teams_of`)."""
    accounts: dict[str, Account] = {}
    for name, entry in htpasswd_users.items():
        # A refused line: a local name nobody can log in as (disabled, no hash).
        accounts[name] = Account(name, "user", entry.password_hash.encode(),
                                 disabled=entry.refused is not None)
    for name, user in settings.users.items():
        accounts[name] = Account(
            name,
            "user",
            user.password_hash.get_secret_value().encode(),
            admin=user.admin,
            disabled=user.disabled,
        )
    for name, service in settings.service_accounts.items():
        accounts[name] = Account(
            name,
            "service",
            service.password_hash.get_secret_value().encode(),
            disabled=service.disabled,
            expires=service.expires,
        )
    return accounts
