"""SSO identities: keyed by `iss` + `sub`, named by the username claim, checked at every use.

An identity signed in with single sign-on is a Subject of kind "sso" whose `binding` is
``ISSUED_AT.ISSUER_TAG.SUBJECT_KEY``: when its session or CLI password was issued, a tag of
the provider, and a key of (iss, sub). Every use (a page, a CLI password, a refresh) runs
:meth:`SsoNames.recheck`: `sso` still configured with the same issuer, the name still usable
(valid, not a local account or federation entry, case-insensitively), not issued before
`sso.not_before[NAME]`, and the name held by that same subject.

Two subjects claiming one username: nothing is stored outside the process, so a name is held
by the first subject seen using it, remembered in process for as long as a session or CLI
password can live and refreshed by every use. A second subject using a held name makes the
name *contested*: both are refused (which one is right cannot be told) for that long, and the
log says so. Across a restart or between replicas a conflict is only seen once both subjects
use the name in the same process again; docs/identity.md asks for a username claim the
provider keeps unique (e.g. Keycloak's `preferred_username`, never `name` or `email`). A reload
that changes `sso` forgets the holders (another issuer makes every subject key new).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config.htpasswd import is_account_name
from gateway.config.identity_schema import SsoSettings
from gateway.config.schema import Settings
from gateway.identity.failures import AuthFailure
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot
from gateway.state.ttlmap import TTLMap

log = logging.getLogger("registry_gateway.sso")
MAX_REMEMBERED = 100_000
MAX_GROUPS = 64


def _digest(*parts: str) -> str:
    raw = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).digest()
    return base64.urlsafe_b64encode(raw[:18]).decode("ascii")


def subject_key(iss: str, sub: str) -> str:
    """The identity: (iss, sub), as a short key (never the username, which may change)."""
    return _digest("subject", iss, sub)


def issuer_tag(iss: str) -> str:
    return _digest("issuer", iss)[:12]


@dataclass(frozen=True, slots=True)
class Binding:
    issued_at: int
    issuer_tag: str
    subject_key: str

    def format(self) -> str:
        return f"{self.issued_at}.{self.issuer_tag}.{self.subject_key}"

    @classmethod
    def parse(cls, text: str) -> Binding | None:
        issued, _, rest = text.partition(".")
        tag, _, key = rest.partition(".")
        if not issued.isascii() or not issued.isdigit() or not tag or not key or "." in key:
            return None
        return cls(int(issued), tag, key)


def relevant_groups(settings: Settings, groups: Iterable[str]) -> frozenset[str]:
    """The groups the config can act on (teams' `groups`, `sso.admin_groups`): what a session
    cookie or CLI password keeps, so neither grows with a user's hundreds of groups."""
    named = {g for team in settings.teams.values() for g in team.groups}
    if settings.sso is not None:
        named.update(settings.sso.admin_groups)
    return frozenset(sorted(g for g in groups if g in named)[:MAX_GROUPS])


class SsoNames:
    """Which subject holds each SSO username (see the module docstring), and the recheck."""

    def __init__(self, max_entries: int = MAX_REMEMBERED,
                 clock: Callable[[], float] = time.time) -> None:
        self._holders: TTLMap[str, str] = TTLMap(max_entries, clock)
        self._contested: TTLMap[str, bool] = TTLMap(max_entries, clock)
        self._clock = clock
        self._sso: SsoSettings | None = None  # what the remembered holders were seen under

    def name_problem(self, snapshot: Snapshot, name: str) -> str | None:
        """"bad_name" or "name_taken" (a local account or federation entry, any case), or None."""
        if not is_account_name(name):
            return "bad_name"
        return "name_taken" if name.casefold() in snapshot.taken_names else None

    def hold(self, settings: Settings, name: str, key: str) -> bool:
        """Whether `name` is (now) held by subject `key`; False once two subjects used it."""
        if settings.sso != self._sso:
            # A reload changed `sso` (another issuer makes every subject key new): forget, as
            # remembered identities are forgotten when `sso` or `directory` changes.
            self._holders.clear()
            self._contested.clear()
            self._sso = settings.sso
        ttl = _memory(settings)
        lowered = name.lower()
        if self._contested.get(lowered) is not None:
            return False
        holder = self._holders.get(lowered)
        if holder is not None and holder != key:
            self._contested.put(lowered, True, ttl)
            log.warning("sso: two subjects of the provider claim the username %s: both refused "
                        "for %d s (make the username claim unique at the provider)", name, ttl)
            return False
        self._holders.put(lowered, key, ttl)
        return True

    def identity(self, snapshot: Snapshot, iss: str, sub: str, claims: Mapping[str, Any],
                 now: float | None = None) -> Subject | str:
        """The Subject a verified sign-in of (iss, sub) becomes, or why it is refused (a
        metric label: "bad_name", "name_taken", "disabled", "name_contested")."""
        sso = snapshot.settings.sso
        name = claims.get(sso.username_claim) if sso is not None else None
        if sso is None or not isinstance(name, str):
            return "bad_name"
        problem = self.name_problem(snapshot, name)
        if problem is not None:
            return problem
        if name.lower() in snapshot.policy.disabled_identities:
            return "disabled"
        key = subject_key(iss, sub)
        if not self.hold(snapshot.settings, name, key):
            return "name_contested"
        raw = claims.get(sso.groups_claim)
        groups = [g for g in raw if isinstance(g, str)] if isinstance(raw, list) else []
        issued = int(self._clock() if now is None else now)
        return Subject(name, "sso", relevant_groups(snapshot.settings, groups),
                       binding=Binding(issued, issuer_tag(iss), key).format())

    async def recheck(self, snapshot: Snapshot, subject: Subject) -> Subject | AuthFailure:
        """The Rechecker for kind "sso" (sessions, CLI passwords, their refresh tokens)."""
        sso = snapshot.settings.sso
        binding = Binding.parse(subject.binding)
        if sso is None or binding is None or binding.issuer_tag != issuer_tag(sso.issuer):
            return AuthFailure.BAD_TOKEN
        if self.name_problem(snapshot, subject.name) is not None:
            return AuthFailure.UNKNOWN_USER
        not_before = next((t for n, t in sso.not_before.items()
                           if n.lower() == subject.name.lower()), None)
        if not_before is not None and binding.issued_at < not_before.timestamp():
            return AuthFailure.BAD_TOKEN
        if not self.hold(snapshot.settings, subject.name, binding.subject_key):
            return AuthFailure.BAD_TOKEN
        return subject


def _memory(settings: Settings) -> int:
    """As long as anything issued to an SSO identity can live."""
    cli = settings.sso.cli_token_ttl if settings.sso is not None else 0
    return max(cli, settings.ui.session_ttl, 60)
