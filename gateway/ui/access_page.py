"""/ui/access (admins only): the rules, accounts and teams, the last reload, and explain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway.http.services import Services
from gateway.policy.accounts import Account, AccountState
from gateway.policy.actions import ACTIONS, as_action
from gateway.policy.names import valid_name
from gateway.policy.rules import Rule
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot
from gateway.ui.render import not_found, render
from gateway.ui.visit import Visit

EXPIRY_WARNING = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class AccountRow:
    account: Account
    state: str
    teams: list[str]
    expiry_warning: str  # "" when nothing to warn about


@dataclass(frozen=True, slots=True)
class Explanation:
    user: str
    repository: str
    action: str
    allowed: bool | None  # None: the question itself was not valid
    text: str


def _account_row(account: Account, now: datetime) -> AccountRow:
    state = account.state(now)
    warning = ""
    if account.expires is not None and state is AccountState.ACTIVE:
        left = account.expires - now
        if left <= EXPIRY_WARNING:
            hours = int(left.total_seconds() // 3600)
            warning = f"expires in {hours // 24} days {hours % 24} hours"
    return AccountRow(account, state.value, sorted(account.teams), warning)


async def explain(services: Services, snapshot: Snapshot, user: str, repository: str,
                  action: str) -> Explanation:
    """The answer `registry-gateway explain USER REPOSITORY ACTION` prints for the running config."""
    checked = as_action(action)
    if checked is None:
        return Explanation(user, repository, action, None, "ACTION is one of pull, push, delete")
    if not valid_name(repository):
        return Explanation(user, repository, action, None,
                           f"{repository!r} is not a valid repository name")
    subject = None if user in ("-", "") else (snapshot.policy.subject_for(user) or Subject(user))
    verdicts = await services.access.decide(snapshot, subject, repository, (checked,),
                                            cached=False, count=False)
    return Explanation(user or "-", repository, action, verdicts.allowed, verdicts[0].describe())


def _rules(snapshot: Snapshot) -> list[tuple[Rule, dict[str, list[str]]]]:
    return [(rule, {"pull": rule.pull.entries(), "push": rule.push.entries(),
                    "delete": rule.delete.entries()}) for rule in snapshot.policy.rules]


async def access(request: web.Request, visit: Visit) -> web.StreamResponse:
    if not visit.admin:
        return not_found(request, visit)
    snapshot = visit.snapshot
    now = datetime.now(UTC)
    accounts = sorted(snapshot.policy.accounts.values(), key=lambda a: (a.kind, a.name))
    query = request.query
    asked = "repository" in query or "user" in query
    result = await explain(visit.services, snapshot, query.get("user", "-").strip(),
                           query.get("repository", "").strip(),
                           query.get("action", "pull")) if asked else None
    return render(request, visit, "access.html", {
        "rules": _rules(snapshot),
        "accounts": [_account_row(a, now) for a in accounts],
        "teams": sorted(snapshot.settings.teams.items()),
        "loaded_at": snapshot.loaded_at,
        "fingerprint": snapshot.fingerprint,
        "last_reload": visit.services.holder.last_result,
        "result": result,
        "actions": ACTIONS,
        "account_names": [a.name for a in accounts],
        # Identity sections as configured: names, issuers, claims; never a secret or its file.
        "sso_settings": snapshot.settings.sso,
        "federation": snapshot.settings.federation,
        "disabled_identities": snapshot.settings.disabled_identities,
    })
