"""Property tests of everything that parses client input: no input raises, and nothing outside
the grammar comes out (a name is an OCI name, forwarded exactly as it was authorised)."""

from __future__ import annotations

import base64
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.identity.credentials import (
    BasicCredentials,
    BearerCredentials,
    MalformedCredentials,
    NoCredentials,
    parse_authorization,
)
from gateway.keys import SigningKey
from gateway.policy.names import PathError, RoutedPath, parse_v2_path
from gateway.policy.routes import query_problem, query_values, required_actions, without_params
from gateway.policy.scope import MAX_SCOPES, parse_scopes
from gateway.tokens import TokenAuthority, TokenError
from gateway.upstream.catalog import page_size

# Written out again here, from the OCI spec, rather than imported from the code under test.
OCI_NAME = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*",
                      re.ASCII)
TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", re.ASCII)
DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}", re.ASCII)
UUID = re.compile(r"[A-Za-z0-9_.=-]+", re.ASCII)

# Pieces an attacker would put in a path: names, route words, dots, escapes, odd bytes.
PIECES = st.sampled_from([
    "a", "b0", "team", "app", "-", "_", "__", ".", "..", "/", "//", "%2f", "%2F", "%2e", "%00",
    "\x00", "\n", " ", "A", "Z", ":", ":5000", "manifests", "blobs", "uploads", "tags", "list",
    "referrers", "_catalog", "latest", "sha256:" + "a" * 64, "sha256:" + "A" * 64, "=", "+",
    "\u00e9", "\u212a", "?", "#", ";", "\\",
])
PATHS = st.one_of(
    st.text(max_size=300),
    st.lists(PIECES, max_size=30).map(lambda parts: "/v2/" + "".join(parts)),
    st.lists(PIECES, max_size=12).map(lambda parts: "/v2/" + "/".join(parts)),
)


@settings(max_examples=2000, deadline=None)
@given(PATHS)
@example("/v2/a/manifests/b/manifests/latest")
@example("/v2/" + "a" * 256 + "/tags/list")
@example("/v2/team/app\n/tags/list")
def test_path_parser(path: str) -> None:
    routed = parse_v2_path(path)
    if routed is None or isinstance(routed, PathError):
        return
    assert isinstance(routed, RoutedPath)
    if routed.route in ("base", "catalog"):
        assert path in ("/v2", "/v2/", "/v2/_catalog")
        return
    name, ref = routed.name, routed.reference
    assert name is not None and len(name) <= 255 and OCI_NAME.fullmatch(name)
    # The name and reference are exactly the path's: what is authorised is what is forwarded.
    suffix = {"tags": "/tags/list", "manifests": f"/manifests/{ref}", "blobs": f"/blobs/{ref}",
              "uploads": f"/blobs/uploads/{ref}", "referrers": f"/referrers/{ref}"}[routed.route]
    assert path == f"/v2/{name}{suffix}"
    if routed.route == "manifests":
        assert ref is not None and (TAG.fullmatch(ref) or DIGEST.fullmatch(ref))
    if routed.route in ("blobs", "referrers"):
        assert ref is not None and DIGEST.fullmatch(ref)
    if routed.route == "uploads":
        assert ref == "" or (ref is not None and UUID.fullmatch(ref))
    for method in ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "BREW", "get"):
        actions = required_actions(routed, method)
        assert actions is None or set(actions) <= {"pull", "push", "delete"}


SCOPE_PIECES = st.sampled_from([
    "repository", "repository(plugin)", "registry", "catalog", ":", "a", "team/app", "Team/app",
    "host:5000/app", "pull", "push", "delete", "*", ",", " ", "a/../b", "%2f", "\x00", "pull,push",
    "\u00e9",
])
SCOPES = st.one_of(st.text(max_size=200), st.lists(SCOPE_PIECES, max_size=20).map("".join))


@settings(max_examples=800, deadline=None)
@given(st.lists(SCOPES, max_size=6))
@example(["repository:team/app:pull,push repository:a:*"])
@example(["repository:" + "a" * 300 + ":pull"])
@example([f"repository:r{i}:pull" for i in range(100)])
def test_scope_parser(values: list[str]) -> None:
    parsed = parse_scopes(values)
    assert len(parsed.repositories) <= MAX_SCOPES
    for scope in parsed.repositories:
        assert len(scope.name) <= 255 and OCI_NAME.fullmatch(scope.name)
        assert scope.actions <= {"pull", "push", "delete"}
        assert scope.format().startswith(f"repository:{scope.name}:")


HEADERS = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.tuples(st.sampled_from(["Basic", "basic", "BASIC", "Bearer", "bearer", "Digest", ""]),
              st.sampled_from([" ", "  ", "\t", ""]),
              st.one_of(st.text(max_size=100), st.binary(max_size=80).map(
                  lambda b: base64.b64encode(b).decode()))).map("".join),
)


@settings(max_examples=1500, deadline=None)
@given(HEADERS)
@example("Basic " + "=" * 10)
@example("Basic \udcff")
@example("Bearer ")
@example("Basic Og==")  # ":"
def test_authorization_parser(header: str | None) -> None:
    credentials = parse_authorization(header)
    if isinstance(credentials, BasicCredentials):
        assert credentials.username and ":" not in credentials.username
        assert "password" not in repr(credentials) or credentials.password == ""
    elif isinstance(credentials, BearerCredentials):
        assert credentials.token and credentials.token.isascii() and " " not in credentials.token
    else:
        assert isinstance(credentials, NoCredentials | MalformedCredentials)
        assert (header is None) == isinstance(credentials, NoCredentials)


QUERIES = st.one_of(st.text(max_size=200), st.lists(st.sampled_from(
    ["mount", "from", "digest", "_state", "=", "&", ";", "%3D", "%26", "fr%6fm", "+", "x", "a/b",
     "%zz", "\x00"]), max_size=20).map("".join))


@settings(max_examples=1000, deadline=None)
@given(QUERIES, st.lists(st.text(max_size=60), max_size=3))
def test_query_helpers(query: str, content_types: list[str]) -> None:
    query_problem(query, content_types)
    query_values(query)
    stripped = without_params(query, ("mount", "from"))
    assert not {"mount", "from"} & set(query_values(stripped))
    assert set(stripped.split("&")) - {""} <= set(query.split("&"))  # byte for byte otherwise


@given(st.one_of(st.none(), st.text(max_size=50)))
def test_page_size(raw: str | None) -> None:
    n = page_size(raw)
    assert n is None or 0 <= n <= 1000


AUTHORITY = TokenAuthority(SigningKey.generate(), "gateway.test", "issuer", 300, 3600)
JWTISH = st.lists(st.one_of(st.text(max_size=40), st.sampled_from(
    ["eyJhbGciOiJub25lIn0", "eyJ9", "", "..."])), min_size=1, max_size=4).map(".".join)


@settings(max_examples=1000, deadline=None)
@given(JWTISH)
def test_token_verification_only_raises_token_error(token: str) -> None:
    for verify in (AUTHORITY.verify_access, AUTHORITY.verify_refresh):
        try:
            verify(token)
        except TokenError:
            pass
        else:
            raise AssertionError("a random string verified")
