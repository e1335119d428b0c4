"""skopeo with a permissive policy, its own auth file and HOME, and plain HTTP by default."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .procs import clean_env, find_program, run_command

PERMISSIVE_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}

# Which per-command flags each skopeo subcommand takes (skopeo 1.9).
_SINGLE_TLS = frozenset({"inspect", "delete", "list-tags", "login", "logout"})
_PAIRED_TLS = frozenset({"copy", "sync"})
_AUTHFILE = _SINGLE_TLS | _PAIRED_TLS
_CREDS = frozenset({"inspect", "delete", "list-tags"})


class Skopeo:
    """``run("inspect", "docker://127.0.0.1:P/repo:tag", creds="u:p")``.

    ``--tls-verify=false`` (``--src-/--dest-tls-verify=false`` for copy and sync) is added unless
    ``tls_verify=True``; ``--authfile`` points at ``authfile`` in the test's directory, and HOME
    and XDG_RUNTIME_DIR point there too, so no credentials leak in from the machine or between
    tests.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.home = workdir / "home"
        self.runtime_dir = workdir / "run"
        self.policy_path = workdir / "policy.json"
        self.authfile = workdir / "auth.json"
        for directory in (self.home, self.runtime_dir):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.policy_path.write_text(json.dumps(PERMISSIVE_POLICY))
        self.binary = find_program("skopeo")

    def __repr__(self) -> str:
        return f"<Skopeo authfile={self.authfile}>"

    def run(
        self,
        subcommand: str,
        *args: str,
        creds: str | None = None,
        src_creds: str | None = None,
        dest_creds: str | None = None,
        tls_verify: bool = False,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``skopeo --policy P SUBCOMMAND [flags] ARGS``; ``creds`` are ``user:password``."""
        flags: list[str] = []
        verify = str(tls_verify).lower()
        if subcommand in _SINGLE_TLS:
            flags.append(f"--tls-verify={verify}")
        elif subcommand in _PAIRED_TLS:
            flags += [f"--src-tls-verify={verify}", f"--dest-tls-verify={verify}"]
        if subcommand in _AUTHFILE:
            flags.append(f"--authfile={self.authfile}")
        if creds is not None:
            if subcommand not in _CREDS:
                raise ValueError(f"skopeo {subcommand} takes --src-creds/--dest-creds, not --creds")
            flags.append(f"--creds={creds}")
        for flag, value in (("--src-creds", src_creds), ("--dest-creds", dest_creds)):
            if value is not None:
                if subcommand not in _PAIRED_TLS:
                    raise ValueError(f"skopeo {subcommand} does not take {flag}")
                flags.append(f"{flag}={value}")
        argv = [self.binary, f"--policy={self.policy_path}", subcommand, *flags, *args]
        return run_command(argv, env=self.env(), check=check, timeout=timeout, input=input)

    def env(self) -> dict[str, str]:
        return clean_env(
            drop=("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_CONFIG_HOME"),
            HOME=str(self.home),
            XDG_RUNTIME_DIR=str(self.runtime_dir),
        )

    def login(
        self, registry: str, username: str, password: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``skopeo login`` into this helper's auth file (password on stdin)."""
        args = ("--username", username, "--password-stdin", registry)
        return self.run("login", *args, input=password, check=check)

    def inspect(self, ref: str, *, creds: str | None = None) -> dict[str, Any]:
        """``skopeo inspect REF`` parsed (``Digest``, ``RepoTags``, ``Layers``, ...)."""
        result = json.loads(self.run("inspect", ref, creds=creds).stdout)
        if not isinstance(result, dict):
            raise TypeError(f"skopeo inspect printed {result!r}")
        return result
