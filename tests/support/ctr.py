"""containerd's ``ctr``, pointed at the private dockerd's containerd, in its own namespace."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .procs import clean_env, find_program, run_command

NAMESPACE = "rg-test"


class Ctr:
    """``pull("127.0.0.1:P/repo:tag", user="u:p")`` runs ``ctr images pull --plain-http``.

    ``remove_all_images()`` (called when the fixture ends) empties the namespace, so every test
    pulls from the registry for real.
    """

    def __init__(self, address: Path, namespace: str = NAMESPACE) -> None:
        self.address = address
        self.namespace = namespace
        self.binary = find_program("ctr")

    def __repr__(self) -> str:
        return f"<Ctr {self.address} -n {self.namespace}>"

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, "--address", str(self.address), "--namespace", self.namespace, *args]
        env = clean_env(drop=("CONTAINERD_ADDRESS", "CONTAINERD_NAMESPACE"))
        return run_command(argv, env=env, check=check, timeout=timeout)

    def pull(
        self,
        ref: str,
        *,
        user: str | None = None,
        plain_http: bool = True,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """``ctr images pull [--plain-http] [--user USER[:PASSWORD]] REF``."""
        args = ["images", "pull"]
        if plain_http:
            args.append("--plain-http")
        if user is not None:
            args += ["--user", user]
        return self.run(*args, ref, check=check, timeout=timeout)

    def images(self) -> list[str]:
        """The image references in this namespace."""
        return self.run("images", "list", "--quiet", timeout=30).stdout.split()

    def remove_all_images(self) -> None:
        refs = self.images()
        if refs:
            self.run("images", "remove", *refs, timeout=60)
