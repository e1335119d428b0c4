"""Who a decision is about: a local account, or an identity from a directory, SSO or a workload."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ExternalKind = Literal["directory", "sso", "workload"]
SubjectKind = Literal["user", "service", "directory", "sso", "workload"]
LOCAL_KINDS: frozenset[SubjectKind] = frozenset({"user", "service"})
EXTERNAL_KINDS: tuple[ExternalKind, ...] = ("directory", "sso", "workload")


@dataclass(frozen=True, slots=True)
class Subject:
    """An authenticated caller as rules see it; anonymous callers have no Subject at all."""

    name: str
    kind: SubjectKind = "user"
    groups: frozenset[str] = frozenset()  # directory or SSO groups at the time of the check
    # Not part of who it is (no equality, no cache key): when the credential behind it ends (no
    # token may outlive it), and what a refresh token or UI session carries so the backend that
    # vouched for it can check it again (never a secret).
    expires_at: float | None = field(default=None, compare=False)
    binding: str = field(default="", compare=False)

    @property
    def local(self) -> bool:
        return self.kind in LOCAL_KINDS

    def cache_key(self) -> str:
        """What the decision depends on, for cache keys: a group change never reuses one."""
        if self.local and not self.groups:
            return self.name
        return "\x1e".join((self.kind, self.name, ",".join(sorted(self.groups))))
