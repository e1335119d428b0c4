"""Route and name parsing on the raw path."""

from __future__ import annotations

import pytest

from gateway.policy.names import PathError, RoutedPath, parse_v2_path
from gateway.policy.routes import query_problem, required_actions, without_params

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("path", "route", "name", "ref"),
    [
        ("/v2/", "base", None, None),
        ("/v2", "base", None, None),
        ("/v2/_catalog", "catalog", None, None),
        ("/v2/team/app/manifests/1.0", "manifests", "team/app", "1.0"),
        (f"/v2/team/app/manifests/{DIGEST}", "manifests", "team/app", DIGEST),
        ("/v2/a/manifests/b/manifests/latest", "manifests", "a/manifests/b", "latest"),
        (f"/v2/a/blobs/b/blobs/{DIGEST}", "blobs", "a/blobs/b", DIGEST),
        ("/v2/team/app/blobs/uploads/", "uploads", "team/app", ""),
        ("/v2/team/app/blobs/uploads/0a1b-2c=", "uploads", "team/app", "0a1b-2c="),
        ("/v2/team/app/tags/list", "tags", "team/app", None),
        ("/v2/tags/list/tags/list", "tags", "tags/list", None),
        (f"/v2/team/app/referrers/{DIGEST}", "referrers", "team/app", DIGEST),
        ("/v2/a__b/c-d/e.f_g/manifests/v1", "manifests", "a__b/c-d/e.f_g", "v1"),
    ],
)
def test_routes(path: str, route: str, name: str | None, ref: str | None) -> None:
    assert parse_v2_path(path) == RoutedPath(route, name, ref)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "path",
    [
        "/v2/team%2Fapp/manifests/1.0",
        "/v2/team/../app/manifests/1.0",
        "/v2/team/%2e%2e/app/manifests/1.0",
        "/v2/team//app/manifests/1.0",
        "/v2/team/./app/manifests/1.0",
        "/v2/Team/app/manifests/1.0",
        "/v2/host:5000/app/manifests/1.0",
        "/v2/" + "a" * 256 + "/manifests/1.0",
        "/v2/team/app\x00/manifests/1.0",
        "/v2/team/app\n/manifests/1.0",
        "/v2/team/-app/manifests/1.0",
        "/v2/team/app-/tags/list",
        "/v2/team/ap p/tags/list",
        "/v2/tëam/app/tags/list",
    ],
)
def test_bad_names_are_refused(path: str) -> None:
    result = parse_v2_path(path)
    assert isinstance(result, PathError)
    assert (result.status, result.code) == (400, "NAME_INVALID")


def test_name_at_the_limit_is_fine() -> None:
    name = "a" * 255
    assert parse_v2_path(f"/v2/{name}/tags/list") == RoutedPath("tags", name, None)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v2/team/app/manifests/-bad", "TAG_INVALID"),
        ("/v2/team/app/manifests/" + "t" * 129, "TAG_INVALID"),
        ("/v2/team/app/blobs/sha256:abc", "DIGEST_INVALID"),
        ("/v2/team/app/blobs/sha256:" + "A" * 64, "DIGEST_INVALID"),
        ("/v2/team/app/blobs/md5:" + "a" * 32, "DIGEST_INVALID"),
    ],
)
def test_bad_references(path: str, code: str) -> None:
    result = parse_v2_path(path)
    assert isinstance(result, PathError) and result.code == code


@pytest.mark.parametrize(
    "path",
    ["/v2/team/app", "/v2/team/app/", "/v2/team/app/tags/list/", "/v2/team/app/unknown/x", "/v2/_catalog/"],
)
def test_unknown_routes(path: str) -> None:
    assert parse_v2_path(path) is None


@pytest.mark.parametrize(
    ("route", "ref", "method", "actions"),
    [
        ("manifests", "1", "GET", ("pull",)),
        ("manifests", "1", "HEAD", ("pull",)),
        ("manifests", "1", "PUT", ("pull", "push")),
        ("manifests", "1", "DELETE", ("delete",)),
        ("manifests", "1", "POST", None),
        ("manifests", "1", "PATCH", None),
        ("blobs", DIGEST, "GET", ("pull",)),
        ("blobs", DIGEST, "DELETE", ("delete",)),
        ("blobs", DIGEST, "PUT", None),
        ("uploads", "", "POST", ("pull", "push")),
        ("uploads", "", "GET", None),
        ("uploads", "u", "PATCH", ("pull", "push")),
        ("uploads", "u", "PUT", ("pull", "push")),
        ("uploads", "u", "GET", ("push",)),
        ("uploads", "u", "DELETE", ("push",)),
        ("tags", None, "GET", ("pull",)),
        ("tags", None, "DELETE", None),
        ("referrers", DIGEST, "GET", ("pull",)),
        ("manifests", "1", "BREW", None),
    ],
)
def test_required_actions(route: str, ref: str | None, method: str, actions: tuple[str, ...] | None) -> None:
    routed = RoutedPath(route, "team/app", ref)  # type: ignore[arg-type]
    assert required_actions(routed, method) == actions


def test_query_problems() -> None:
    assert query_problem("mount=a&from=b", "") is None
    assert query_problem("mount=a&mount=b", "") == "repeated query parameter 'mount'"
    assert query_problem("digest=a&digest=b", "") is not None
    assert query_problem("_state=a&_state=b", "") is not None
    assert query_problem("from=a&from=b", "") is not None
    assert query_problem("", "application/x-www-form-urlencoded") is not None
    assert query_problem("", "multipart/form-data; boundary=x") is not None
    assert query_problem("", "application/octet-stream") is None


def test_without_params_keeps_the_rest_byte_for_byte() -> None:
    query = "mount=sha256%3Aab&from=private%2Fx&_state=abc%3D&x"
    assert without_params(query, ("mount", "from")) == "_state=abc%3D&x"
