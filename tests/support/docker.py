"""A private Docker daemon (dockerd 20.10, vfs storage) and a client bound to it.

The daemon lives in a short directory under /tmp (unix socket paths must stay under 108 bytes),
starts its own containerd under the exec root, and touches no iptables rules or bridges, so
containers use ``--network host``. Docker treats 127.0.0.0/8 registries as insecure, so plain
HTTP registries on 127.0.0.1:PORT work without ``--insecure-registry``.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .procs import (
    ManagedProcess,
    find_program,
    kill_processes_mentioning,
    remove_tree,
    run_command,
    unmount_under,
)

# /usr/local/bin/docker (a newer client) may shadow Debian's; use the one that matches dockerd.
DOCKER_CLI = "/usr/bin/docker"
BUSYBOX = "/usr/bin/busybox"
BUSYBOX_APPLETS = ("sh", "echo", "ls", "cat", "wget")
# Variables that would point the client somewhere else than our daemon.
_CLIENT_ENV_DROP = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


class Dockerd:
    """A running dockerd; ``client(config_dir)`` gives a CLI wrapper bound to it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.socket = workdir / "docker.sock"
        self.data_root = workdir / "root"
        self.exec_root = workdir / "exec"
        self.log_path = workdir / "dockerd.log"
        self.default_config_dir = workdir / "client-config"
        config_file = workdir / "daemon.json"
        config_file.write_text("{}\n")  # never read /etc/docker/daemon.json
        self.default_config_dir.mkdir(exist_ok=True)
        self.process = ManagedProcess(
            "dockerd",
            [
                find_program("dockerd"),
                f"--config-file={config_file}",
                "--storage-driver=vfs",
                f"--data-root={self.data_root}",
                f"--exec-root={self.exec_root}",
                f"--host=unix://{self.socket}",
                f"--pidfile={workdir / 'dockerd.pid'}",
                "--iptables=false",
                "--ip-forward=false",
                "--bridge=none",
            ],
            log_path=self.log_path,
            env={k: v for k, v in os.environ.items() if k not in _CLIENT_ENV_DROP},
            death_signal=signal.SIGTERM,
        )

    def __repr__(self) -> str:
        return f"<Dockerd {self.host}>"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for docker clients: DOCKER_HOST and the daemon's default DOCKER_CONFIG."""
        return client_env(self.host, self.default_config_dir)

    @property
    def containerd_socket(self) -> Path:
        """The daemon's own containerd, for ``ctr --address``."""
        managed = self.exec_root / "containerd" / "containerd.sock"
        return managed if managed.exists() else Path("/run/containerd/containerd.sock")

    def client(self, config_dir: Path | None = None) -> Docker:
        return Docker(self, config_dir or self.default_config_dir)

    def start(self, timeout: float = 60.0) -> None:
        self.process.start()
        self.process.wait_ready(self._ready, timeout=timeout)

    def stop(self) -> None:
        """Remove containers, stop the daemon, kill strays, unmount and delete the directory."""
        try:
            if self.process.running:
                with contextlib.suppress(subprocess.SubprocessError):
                    self._remove_containers()
            self.process.stop(timeout=30.0)
        finally:
            kill_processes_mentioning(self.workdir)
            unmount_under(self.workdir)
            remove_tree(self.workdir)

    def _remove_containers(self) -> None:
        docker = self.client()
        ids = docker.run("ps", "-aq", timeout=30).stdout.split()
        if ids:
            docker.run("rm", "-f", *ids, check=False, timeout=60)

    def _ready(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(self.socket))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = sock.recv(4096)
        return answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n", 1)[0]


class Docker:
    """The Docker CLI (``/usr/bin/docker``) bound to one daemon and one DOCKER_CONFIG directory.

    Each test gets its own config directory, so ``docker login`` credentials never leak.
    """

    def __init__(self, daemon: Dockerd, config_dir: Path) -> None:
        self.daemon = daemon
        self.config_dir = config_dir
        config_dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<Docker {self.daemon.host} config={self.config_dir}>"

    @property
    def containerd_socket(self) -> Path:
        return self.daemon.containerd_socket

    def env(self, config_dir: Path | None = None) -> dict[str, str]:
        return client_env(self.daemon.host, config_dir or self.config_dir)

    def run(
        self,
        *args: str,
        config_dir: Path | None = None,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS``; raises CommandError (with its output) on failure if ``check``."""
        return run_command(
            [DOCKER_CLI, *args],
            env=self.env(config_dir),
            check=check,
            timeout=timeout,
            input=input,
        )

    def login(
        self, registry: str, username: str, password: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        args = ("login", "--username", username, "--password-stdin", registry)
        return self.run(*args, input=password, check=check)


def client_env(host: str, config_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV_DROP}
    env["DOCKER_HOST"] = host
    env["DOCKER_CONFIG"] = str(config_dir)
    return env


def start_dockerd(*, timeout: float = 60.0) -> Dockerd:
    """Start a private dockerd in a fresh short directory under /tmp."""
    workdir = Path(tempfile.mkdtemp(prefix="rgd-", dir="/tmp"))
    daemon = Dockerd(workdir)
    try:
        daemon.start(timeout=timeout)
    except BaseException:
        daemon.stop()
        raise
    return daemon


def busybox_rootfs_tar(applets: tuple[str, ...] = BUSYBOX_APPLETS) -> bytes:
    """A minimal root filesystem: static busybox as /bin/busybox plus symlinks, and /tmp."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, mode in (("bin", 0o755), ("tmp", 0o1777), ("etc", 0o755)):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    return buf.getvalue()


def import_busybox(docker: Docker, workdir: Path, name: str = "rg-test/busybox:1") -> str:
    """``docker import`` a busybox root filesystem as ``name`` (CMD /bin/sh); returns ``name``."""
    tar_path = workdir / "busybox-rootfs.tar"
    tar_path.write_bytes(busybox_rootfs_tar())
    docker.run("import", "--change", 'CMD ["/bin/sh"]', str(tar_path), name)
    return name
