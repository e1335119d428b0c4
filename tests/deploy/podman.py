"""A private podman (Debian's 4.3, rootful) with all its state in one temporary directory.

Storage under ``root/`` (overlay where the kernel and file system allow it, else vfs, which
copies every layer and every container's root filesystem), runtime state under ``run/``, events
in a file, cgroupfs (no systemd here), and a containers.conf of its own (``CONTAINERS_CONF``)
with no default rlimits: runc in a sandbox may refuse to raise them. Nothing it does touches
/var/lib/containers.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from support.docker import DOCKER_CLI, Docker
from support.procs import (
    CommandError,
    find_program,
    kill_processes_mentioning,
    remove_tree,
    run_command,
    unmount_under,
)

CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


class Podman:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "containers.conf"
        self.conf.write_text(CONTAINERS_CONF)
        self.base = [find_program("podman"), "--root", str(workdir / "root"),
                     "--runroot", str(workdir / "run"), "--tmpdir", str(workdir / "tmp"),
                     "--events-backend", "file", "--cgroup-manager", "cgroupfs"]
        driver = "overlay" if self._works_with("overlay") else "vfs"
        self.base += ["--storage-driver", driver]

    def _works_with(self, driver: str) -> bool:
        probe = run_command([*self.base, "--storage-driver", driver, "info"], env=self.env(),
                            check=False, timeout=60)
        if probe.returncode != 0:  # leave nothing of the failed driver behind
            unmount_under(self.workdir)
            remove_tree(self.workdir / "root")
        return probe.returncode == 0

    def __repr__(self) -> str:
        return f"<Podman {self.workdir}>"

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 300,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_command([*self.base, *args], env=self.env(), check=check, timeout=timeout,
                           input=input)

    def load_from_docker(self, docker: Docker, images: Sequence[str]) -> None:
        """`docker save IMAGES | podman load`: the images the test's dockerd built."""
        with subprocess.Popen([DOCKER_CLI, "save", *images], env=docker.env(),
                              stdout=subprocess.PIPE) as save:
            loaded = subprocess.run([*self.base, "load"], stdin=save.stdout, env=self.env(),
                                    capture_output=True, text=True, timeout=600, check=False)
            assert save.stdout is not None
            save.stdout.close()
            save.wait(60)
        if save.returncode or loaded.returncode:
            raise CommandError(loaded.returncode or save.returncode, ["podman", "load"],
                               loaded.stdout, loaded.stderr)

    def logs(self, container: str) -> str:
        result = self.run("logs", container, check=False, timeout=60)
        return result.stdout + result.stderr

    def close(self) -> None:
        """Remove every pod, container and volume, then whatever is left of the directory."""
        try:  # SIGKILL first: a graceful stop of each container only adds seconds here
            self.run("pod", "kill", "--all", check=False, timeout=120)
            self.run("pod", "rm", "--all", "--force", "--time", "2", check=False, timeout=120)
            self.run("rm", "--all", "--force", "--time", "2", check=False, timeout=120)
            self.run("volume", "rm", "--all", "--force", check=False, timeout=120)
        finally:
            kill_processes_mentioning(self.workdir)
            unmount_under(self.workdir)
            remove_tree(self.workdir)
