"""What each (route, method) needs: the actions to check before anything reaches the upstream."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from gateway.policy.actions import Action
from gateway.policy.names import RoutedPath

PULL: tuple[Action, ...] = ("pull",)
PUSH: tuple[Action, ...] = ("pull", "push")
PUSH_ONLY: tuple[Action, ...] = ("push",)
DELETE: tuple[Action, ...] = ("delete",)

_READ = {"GET": PULL, "HEAD": PULL}
_METHODS: dict[str, dict[str, tuple[Action, ...]]] = {
    "manifests": {**_READ, "PUT": PUSH, "DELETE": DELETE},
    "blobs": {**_READ, "DELETE": DELETE},
    "tags": _READ,
    "referrers": _READ,
    "new_upload": {"POST": PUSH},
    # Reading or cancelling an upload needs push: only its writer has business there.
    "upload": {"PATCH": PUSH, "PUT": PUSH, "GET": PUSH_ONLY, "HEAD": PUSH_ONLY,
               "DELETE": PUSH_ONLY},
}
SINGLE_VALUED = ("mount", "from", "digest", "_state")
FORM_TYPE = "application/x-www-form-urlencoded"


def required_actions(routed: RoutedPath, method: str) -> tuple[Action, ...] | None:
    """The actions `method` needs on the route's repository; None: the method is not allowed."""
    kind: str = routed.route
    if kind == "uploads":
        kind = "upload" if routed.reference else "new_upload"
    return _METHODS.get(kind, {}).get(method)


def query_problem(query: str, content_types: str | Sequence[str]) -> str | None:
    """Refuse what the registry would read differently than we do (protocol.md §5.3).

    Go's `FormValue` reads form bodies before the query string and takes the first of repeated
    values; Go's `mime.ParseMediaType` lowercases and trims the type, so we do too.
    """
    types = [content_types] if isinstance(content_types, str) else list(content_types)
    if len(types) > 1:
        return "more than one Content-Type header"
    media = types[0].split(";", 1)[0].strip().lower() if types else ""
    if not media.isascii() or media == FORM_TYPE or media.startswith("multipart/"):
        return "form-encoded bodies are not accepted"
    if ";" in query:
        return "';' is not a query separator"
    seen: set[str] = set()
    for key, _ in parse_qsl(query, keep_blank_values=True):
        if key in SINGLE_VALUED:
            if key in seen:
                return f"repeated query parameter {key!r}"
            seen.add(key)
    return None


def query_values(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def without_params(query: str, names: tuple[str, ...]) -> str:
    """The raw query with `names` removed, every other parameter byte for byte as sent."""
    kept = [part for part in query.split("&")
            if part and next(iter(dict(parse_qsl(part, keep_blank_values=True))), "") not in names]
    return "&".join(kept)
