"""Uploads belong to their writer, and a cross-repository mount needs pull on its source."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.access.decisions import Decider, Verdict
from gateway.access.request import Caller
from gateway.policy.names import RoutedPath, valid_name
from gateway.policy.routes import query_values, without_params
from gateway.runtime.snapshot import Snapshot
from gateway.state.uploads import UploadBindings

# Only these end a session: a GET on it also answers 204 (its status), and the writer goes on.
FINISHED = frozenset({("PUT", 201), ("DELETE", 204)})

PATCH_TYPES = frozenset({"", "application/octet-stream"})


def patch_problem(method: str, content_type: str) -> str | None:
    """distribution 2.8.2 answers 500 UNKNOWN to a PATCH whose Content-Type is neither empty nor
    exactly application/octet-stream (protocol.md); a 4xx tells the client it was its mistake."""
    if method == "PATCH" and content_type not in PATCH_TYPES:
        return "an upload PATCH takes Content-Type application/octet-stream or none"
    return None


def upload_owner(caller: Caller, repository: str) -> str:
    subject = caller.subject.cache_key() if caller.subject is not None else ""
    return f"{subject}\x1f{repository}"


@dataclass(frozen=True, slots=True)
class MountSource:
    """A mount source the config lets the caller pull and its token does not name."""

    name: str
    verdict: Verdict


class UploadGuard:
    def __init__(self, bindings: UploadBindings, decider: Decider) -> None:
        self._bindings = bindings
        self._decider = decider

    async def may_continue(self, caller: Caller, routed: RoutedPath) -> bool:
        """An existing upload session is only its writer's, in the repository it began in."""
        assert routed.name is not None and routed.reference
        return await self._bindings.owner(routed.reference) == upload_owner(caller, routed.name)

    async def checked_mount(self, snapshot: Snapshot, caller: Caller,
                            query: str) -> str | MountSource:
        """A mount only from a repository the caller may pull; else a plain upload. When the
        config allows the pull but the caller's token lacks it: the source to challenge for, as
        a token-auth distribution does, so the client asks for both scopes and mounts."""
        params = query_values(query)
        if "mount" not in params and "from" not in params:
            return query
        source = params.get("from", "")
        if valid_name(source) and params.get("mount"):
            verdicts = await self._decider.decide(snapshot, caller, source, ("pull",))
            if verdicts.allowed:
                return query
            verdict = verdicts.deciding()
            if verdict.decision.allowed and not verdict.in_token:
                return MountSource(source, verdict)
        return without_params(query, ("mount", "from"))


    async def track(self, caller: Caller, routed: RoutedPath, method: str, status: int,
                    upload_id: str) -> None:
        """Bind a new upload to its writer; forget it once finished or cancelled.

        Called before the POST's 202 leaves (forward() hands small answers back unsent), so
        the binding exists before the client's first PATCH, on any connection or replica.
        """
        if routed.route != "uploads" or routed.name is None:
            return
        if method == "POST" and status == 202 and upload_id:
            await self._bindings.bind(upload_id, upload_owner(caller, routed.name))
        elif routed.reference and (method, status) in FINISHED:
            await self._bindings.forget(routed.reference)
