"""Fixtures that start real programs on 127.0.0.1 (see tests/support/ for the helpers).

    def test_push(docker: Docker, busybox_image: str, registry_upstream: Upstream) -> None:
        ref = f"{registry_upstream.host}/team/app:1"
        docker.run("tag", busybox_image, ref)
        docker.run("push", ref)

Every program runs in a temporary directory on a free port, is waited for (bounded, with its
log tail on failure) and is stopped (SIGTERM, then SIGKILL) when the fixture ends.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    Ctr,
    Docker,
    Dockerd,
    RedisServer,
    Skopeo,
    Slapd,
    Upstream,
    import_busybox,
    start_dockerd,
    start_redis,
    start_registry,
    start_slapd,
)
from support.issuer import FederationIssuer, start_issuer
from support.oidc_provider import OidcProvider, start_oidc_provider


@pytest.fixture(autouse=True)
def _collect_after_each_test() -> Iterator[None]:
    """With RG_TEST_GC=1, collect garbage after every test, so an unclosed socket or file is
    reported against the test that left it (run pytest as `python -X tracemalloc=20 -m pytest`
    to see where it was made; the PYTHONTRACEMALLOC variable would slow every gateway started
    too) rather than against whichever later test the collector happens to run in. Off by default:
    it costs about a minute over the suite."""
    yield
    if os.environ.get("RG_TEST_GC") == "1":
        gc.collect()


@pytest.fixture
def registry_upstream(tmp_path: Path) -> Iterator[Upstream]:
    """A fresh plain-HTTP registry for this test: ``.url``, ``.host``, ``.port``, ``.root``.

    ``registry_upstream.seed(["team/app", ...])`` creates repositories in its storage (tmpfs:
    10,000 in about 0.5 s); ``.stop()`` / ``.start()`` restart it on the same port and storage.
    """
    upstream = start_registry(tmp_path / "registry")
    yield upstream
    upstream.close()


@pytest.fixture(scope="session")
def registry_upstream_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """One registry shared by the whole session: use repository names unique to your test."""
    upstream = start_registry(tmp_path_factory.mktemp("registry"))
    yield upstream
    upstream.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server without persistence: ``.url``, ``.port``, ``.client()``, ``.stop()``,
    ``.start()`` (same port, empty data: an outage)."""
    server = start_redis(tmp_path / "redis")
    yield server
    server.close()


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """One private dockerd for the session (``.env``, ``.host``, ``.containerd_socket``)."""
    daemon = start_dockerd()
    yield daemon
    daemon.stop()


@pytest.fixture
def docker(dockerd: Dockerd, tmp_path: Path) -> Docker:
    """The docker CLI bound to ``dockerd`` with a DOCKER_CONFIG of this test's own."""
    return dockerd.client(tmp_path / "docker-config")


@pytest.fixture(scope="session")
def busybox_image(dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny local image (static busybox; sh, echo, ls, cat, wget): ``rg-test/busybox:1``."""
    return import_busybox(dockerd.client(), tmp_path_factory.mktemp("busybox"))


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    """skopeo with a permissive policy, an auth file of this test's own and plain HTTP."""
    return Skopeo(tmp_path / "skopeo")


@pytest.fixture
def ctr(dockerd: Dockerd) -> Iterator[Ctr]:
    """``ctr`` on dockerd's containerd, namespace ``rg-test``, emptied after the test."""
    client = Ctr(dockerd.containerd_socket)
    yield client
    client.remove_all_images()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """One OpenLDAP slapd for the session with tests/support/ldap/people.ldif loaded.

    ``.url`` (ldap://, StartTLS too), ``.ldaps_url``, ``.ca_file``, ``.bind_dn`` /
    ``.bind_password`` (the search account), ``.user_base``, ``.group_base``, ``.passwords``;
    ``.modify(ldif)`` (ldapmodify as root), ``.binds(dn=None)`` (BINDs in its log so far),
    ``.stop()`` / ``.start()`` (same ports and data), ``.pause()`` / ``.resume()`` (SIGSTOP: a
    timeout). A test that changes data, stops or pauses it puts it back before it ends.
    """
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """A real OpenID provider (npm oidc-provider): ``.issuer``, ``.client_id``,
    ``.client_secret``, ``.accounts`` (sub -> claims), ``.login_for(username)``. Its client takes
    ``http://127.0.0.1:ANY-PORT/ui/sso/callback``; see tests/support/oidc_provider.py."""
    provider = start_oidc_provider(tmp_path_factory.mktemp("oidc-provider"))
    yield provider
    provider.stop()


@pytest.fixture
def federation_issuer() -> Iterator[FederationIssuer]:
    """A GitHub-shaped OIDC issuer of this test's own (in-process): ``.url``, ``.mint(claims)``,
    ``.rotate()``, ``.stop()``/``.start()``, ``.jwks_fetches``; see tests/support/issuer.py."""
    issuer = start_issuer()
    yield issuer
    issuer.stop()
