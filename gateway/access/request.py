"""One request's scope: its id, the config snapshot it started with, the client, route and caller.

Built once by the outermost middleware and read by handlers, audit and metrics, so a request
sees one snapshot from start to end even across a reload.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from gateway.identity.failures import AuthFailure
from gateway.policy.actions import Action
from gateway.policy.names import RouteName
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking. `token_access` limits a Bearer caller to what its token grants."""

    subject: Subject | None  # None: anonymous
    presented_credentials: bool
    token_access: Mapping[str, frozenset[Action]] | None = None

    @property
    def label(self) -> str:
        return self.subject.name if self.subject is not None else "anonymous"


ANONYMOUS = Caller(None, presented_credentials=False)


def identity_fields(subject: Subject | None) -> dict[str, str]:
    """Audit fields naming the kind of a non-local identity (`sso`, `workload`, `directory`);
    none for local accounts and anonymous callers, whose lines stay as they were."""
    return {"kind": subject.kind} if subject is not None and not subject.local else {}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Authentication failed; the client sees a generic answer, the reason goes to metrics."""

    reason: AuthFailure
    retry_after: int | None = None  # set while locked out


@dataclass(slots=True)
class RequestScope:
    request_id: str
    snapshot: Snapshot
    client: str  # the client address (X-Forwarded-For only from trusted proxies)
    passwords_allowed: bool  # over TLS, on loopback, or where the operator allows it
    route: RouteName
    caller: Caller | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def user(self) -> str:
        return self.caller.label if self.caller is not None else "anonymous"


REQUEST_SCOPE = web.RequestKey("request_scope", RequestScope)
