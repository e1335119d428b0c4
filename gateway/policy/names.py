"""Pure parsing of a raw /v2/ request path into (route, repository, reference)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

RouteName = Literal[
    "base", "catalog", "manifests", "blobs", "uploads", "tags", "referrers", "token", "ui", "other"
]

NAME_MAX = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
COMPONENT = re.compile(_COMPONENT, re.ASCII)
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", re.ASCII)
DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}", re.ASCII)
UUID = re.compile(r"[A-Za-z0-9_.=-]{1,256}", re.ASCII)
_PATH_BYTES = re.compile(r"[A-Za-z0-9._:/=+-]*", re.ASCII)

# The name is greedy and the suffixes hold no '/', so each path has one parse:
# /v2/a/manifests/b/manifests/latest is repository a/manifests/b.
_ROUTES: tuple[tuple[RouteName, re.Pattern[str]], ...] = (
    ("tags", re.compile(r"/v2/(?P<name>.+)/tags/list", re.ASCII | re.DOTALL)),
    ("manifests", re.compile(r"/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)", re.ASCII | re.DOTALL)),
    ("uploads", re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<ref>[^/]*)", re.ASCII | re.DOTALL)),
    ("blobs", re.compile(r"/v2/(?P<name>.+)/blobs/(?P<ref>[^/]+)", re.ASCII | re.DOTALL)),
    ("referrers", re.compile(r"/v2/(?P<name>.+)/referrers/(?P<ref>[^/]+)", re.ASCII | re.DOTALL)),
)


@dataclass(frozen=True, slots=True)
class RoutedPath:
    route: RouteName
    name: str | None = None
    reference: str | None = None  # tag or digest, blob digest, upload id ("" for a new upload)


@dataclass(frozen=True, slots=True)
class PathError:
    status: int
    code: str
    message: str


def valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX and NAME.fullmatch(name) is not None


def valid_component(name: str) -> bool:
    """Whether `name` can be one path component of a repository name (what `{user}` takes)."""
    return len(name) <= NAME_MAX and COMPONENT.fullmatch(name) is not None


def parse_v2_path(raw_path: str) -> RoutedPath | PathError | None:
    """Route a raw (undecoded) path below /v2/; None means no such route.

    Anything that is not plainly one name in the OCI grammar is refused before any decision:
    percent-escapes, dot segments, empty segments, uppercase, over-long names.
    """
    if raw_path in ("/v2/", "/v2"):
        return RoutedPath("base")
    if raw_path == "/v2/_catalog":
        return RoutedPath("catalog")
    if not _PATH_BYTES.fullmatch(raw_path) or "//" in raw_path:
        return PathError(400, "NAME_INVALID", "invalid repository name")
    segments = raw_path.split("/")
    if "." in segments or ".." in segments:
        return PathError(400, "NAME_INVALID", "invalid repository name")
    for route, pattern in _ROUTES:
        match = pattern.fullmatch(raw_path)
        if match is None:
            continue
        name, ref = match.group("name"), match.group("ref") if route != "tags" else None
        if not valid_name(name):
            return PathError(400, "NAME_INVALID", "invalid repository name")
        problem = _reference_problem(route, ref)
        if problem is not None:
            return problem
        return RoutedPath(route, name, ref)
    return None


def impossible_manifest(raw_path: str) -> RoutedPath | None:
    """A manifest path whose reference is neither a tag nor a digest (`.INVALID`, `-tag`): no
    such manifest can exist, so a caller who may pull gets distribution's 404, not a 400."""
    routed = parse_v2_path(raw_path)
    if not isinstance(routed, PathError) or routed.code != "TAG_INVALID":
        return None
    match = dict(_ROUTES)["manifests"].fullmatch(raw_path)
    return RoutedPath("manifests", match.group("name"), match.group("ref")) if match else None


def _reference_problem(route: RouteName, ref: str | None) -> PathError | None:
    if ref is None:
        return None
    if route == "manifests" and not (TAG.fullmatch(ref) or DIGEST.fullmatch(ref)):
        return PathError(400, "TAG_INVALID", "manifest tag did not match URI")
    if route in ("blobs", "referrers") and not DIGEST.fullmatch(ref):
        return PathError(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
    if route == "uploads" and ref and not UUID.fullmatch(ref):
        return PathError(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
    return None


def catalog_key(name: str) -> str:
    """The registry's order: distribution compares paths as if '/' were NUL (`lessPath`)."""
    return name.replace("/", "\0")
