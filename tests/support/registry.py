"""A real Docker registry (distribution 2.8.2, ``docker-registry serve``): unauthenticated plain
HTTP by default; TLS, mTLS, htpasswd or token auth with ``security=`` (see registry_auth.py)."""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from .procs import ManagedProcess, find_program, remove_tree, start_on_free_port
from .registry_auth import RegistrySecurity

REPOSITORIES_SUBDIR = Path("docker/registry/v2/repositories")
_OWNER_FILE = ".rg-test-owner"


class Upstream:
    """A ``docker-registry`` on 127.0.0.1; ``root`` is its filesystem storage root.

    Config and log live in ``workdir``; storage lives in ``storage`` (which ``close()`` deletes
    when ``owns_storage``).
    """

    def __init__(
        self,
        workdir: Path,
        port: int,
        *,
        storage: Path,
        owns_storage: bool = False,
        access_log: bool = True,
        security: RegistrySecurity | None = None,
    ) -> None:
        self.workdir = workdir
        self.security = security or RegistrySecurity()
        self.port = port
        self.root = storage
        self.owns_storage = owns_storage
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(registry_config(self.root, port, access_log=access_log,
                                                    security=self.security))
        self.process = ManagedProcess(
            "docker-registry",
            [find_program("docker-registry"), "serve", str(self.config_path)],
            log_path=self.log_path,
            cwd=workdir,
        )

    def __repr__(self) -> str:
        return f"<Upstream {self.url} root={self.root}>"

    @property
    def url(self) -> str:
        return f"{self.security.scheme}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def repositories_dir(self) -> Path:
        return self.root / REPOSITORIES_SUBDIR

    def start(self, timeout: float = 15.0) -> None:
        """Start (or restart, on the same port and storage) and wait until ``/v2/`` answers 200."""
        self.process.start()
        self.process.wait_ready(self._ready, timeout=timeout)

    def stop(self) -> None:
        self.process.stop()

    def close(self) -> None:
        """Stop, and delete the storage if this object created it."""
        self.stop()
        if self.owns_storage:
            remove_tree(self.root)

    def seed(self, names: Iterable[str]) -> int:
        return seed_repositories(self.root, names)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                timeout: float = 10.0) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request straight at the registry, with the TLS client certificate and htpasswd
        credentials of ``security`` (absent headers: none); (status, headers, body)."""
        conn = self.security.connection(self.port, timeout)
        try:
            conn.request(method, path, body=body,
                         headers={**self.security.headers(), **(headers or {})})
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def _ready(self) -> bool:
        status = self.request("GET", "/v2/", timeout=1.0)[0]
        # With token auth nothing the probe sends is valid: a challenge means it serves.
        return status == 200 or (status == 401 and self.security.token is not None)


def start_registry(
    workdir: Path,
    *,
    storage: Path | None = None,
    access_log: bool = True,
    timeout: float = 15.0,
    security: RegistrySecurity | None = None,
) -> Upstream:
    """Start a registry on a free loopback port; config and log go in ``workdir``.

    Without ``storage``, the storage goes in a fresh directory on tmpfs (/dev/shm when it is
    writable), which ``Upstream.close()`` deletes: seeding 10,000 repositories there takes about
    0.5 s instead of several seconds on this machine's disk.
    """
    owns_storage = storage is None
    root = storage if storage is not None else scratch_dir("rg-registry-")

    def start(port: int) -> Upstream:
        upstream = Upstream(workdir, port, storage=root, owns_storage=owns_storage,
                            access_log=access_log, security=security)
        upstream.start(timeout=timeout)
        return upstream

    try:
        return start_on_free_port(start)
    except BaseException:
        if owns_storage:
            remove_tree(root)
        raise


def scratch_dir(prefix: str) -> Path:
    """A new directory on tmpfs (/dev/shm) if possible, else in the default temp directory.

    It records the creating process; directories whose process is gone (a test run killed with
    SIGKILL) are deleted here, so tmpfs does not fill up with old storage.
    """
    shm = "/dev/shm"
    base = Path(shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir())
    for stale in base.glob(f"{prefix}*"):
        if not _owner_alive(stale):
            remove_tree(stale)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    (path / _OWNER_FILE).write_text(str(os.getpid()))
    return path


def _owner_alive(path: Path) -> bool:
    try:
        pid = int((path / _OWNER_FILE).read_text())
    except (OSError, ValueError):
        # No owner yet: another process may have just created it; only old ones are stale.
        with contextlib.suppress(OSError):
            return time.time() - path.stat().st_mtime < 300
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def registry_config(root: Path, port: int, *, access_log: bool = True,
                    security: RegistrySecurity | None = None) -> str:
    """A distribution 0.1 config: filesystem storage, deletes on, redirects off, no health check;
    plus the TLS and auth sections of ``security``."""
    security = security or RegistrySecurity()
    return f"""\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: {str(not access_log).lower()}
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: {secrets.token_hex(16)}
{security.http_yaml()}health:
  storagedriver:
    enabled: false
{security.auth_yaml()}"""


def seed_repositories(root: Path, names: Iterable[str]) -> int:
    """Create empty repositories straight in the storage layout; returns how many were named.

    distribution 2.8.2 lists a directory in ``/v2/_catalog`` when it contains ``_layers``
    (``_manifests`` alone is not enough). ``_manifests/tags`` makes ``tags/list`` answer
    ``{"name": ..., "tags": null}`` instead of ``404 NAME_UNKNOWN``. The names are not checked
    against the OCI grammar, so tests can seed names the registry accepts but the gateway must
    not (for example an uppercase first component); path tricks are refused.
    """
    base = str(root / REPOSITORIES_SUBDIR)
    count = 0
    for name in names:
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") or p.startswith("_") for p in parts):
            raise ValueError(f"not a repository name the storage layout can hold: {name!r}")
        repo = os.path.join(base, *parts)
        os.makedirs(repo, exist_ok=True)
        for sub in ("_layers", "_manifests", "_manifests/tags"):
            with contextlib.suppress(FileExistsError):
                os.mkdir(os.path.join(repo, sub))
        count += 1
    return count
