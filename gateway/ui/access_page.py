"""/ui/access (admins only): the rules, accounts and teams, the last reload, and explain."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway.http.services import Services
from gateway.policy.accounts import Account, AccountState
from gateway.policy.actions import ACTIONS, as_action
from gateway.policy.decide import Policy
from gateway.policy.explain import explain as explain_decision
from gateway.policy.explain import explained_subject
from gateway.policy.names import valid_name
from gateway.policy.rules import Rule
from gateway.runtime.snapshot import Snapshot
from gateway.ui.render import not_found, render
from gateway.ui.visit import Visit

EXPIRY_WARNING = timedelta(days=7)
GROUPS_MAX = 4096  # characters of the explain form's groups field that are read


@dataclass(frozen=True, slots=True)
class AccountRow:
    account: Account
    state: str
    teams: list[str]
    expiry_warning: str  # "" when nothing to warn about


@dataclass(frozen=True, slots=True)
class Explanation:
    user: str
    groups: str
    repository: str
    action: str
    allowed: bool | None  # None: the question itself was not valid
    text: str


def _account_row(account: Account, policy: Policy, now: datetime) -> AccountRow:
    state = account.state(now)
    warning = ""
    if account.expires is not None and state is AccountState.ACTIVE:
        left = account.expires - now
        if left <= EXPIRY_WARNING:
            hours = int(left.total_seconds() // 3600)
            warning = f"expires in {hours // 24} days {hours % 24} hours"
    teams = sorted(policy.teams_by_member.get(account.name, ()))
    return AccountRow(account, state.value, teams, warning)


async def explain(services: Services, snapshot: Snapshot, user: str, repository: str,
                  action: str, groups: str = "") -> Explanation:
    """The answer `registry-gateway explain [--groups G] USER REPOSITORY ACTION` prints for the
    running config."""
    asked = Explanation(user or "-", groups, repository, action, None, "")
    checked = as_action(action)
    if checked is None:
        return replace(asked, text="ACTION is one of pull, push, delete")
    if not valid_name(repository):
        return replace(asked, text=f"{repository!r} is not a valid repository name")
    policy = snapshot.policy
    subject = explained_subject(policy, user, groups)
    verdicts = await services.access.decide(snapshot, subject, repository, (checked,),
                                            cached=False, count=False)
    return replace(asked, allowed=verdicts.allowed,
                   text=explain_decision(policy, subject, checked, verdicts[0].decision))


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
                           query.get("repository", "").strip(), query.get("action", "pull"),
                           query.get("groups", "").strip()[:GROUPS_MAX]) if asked else None
    return render(request, visit, "access.html", {
        "rules": _rules(snapshot),
        "accounts": [_account_row(a, snapshot.policy, now) for a in accounts],
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
        # The bind password is never shown; its file's path is (it says where to rotate it).
        "directory": snapshot.settings.directory,
        "disabled_identities": snapshot.settings.disabled_identities,
    })
