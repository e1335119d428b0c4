"""A copy of this checkout as a newcomer's clone, and what a test leaves behind in it.

``copy_checkout`` copies what ``git`` would ship (tracked plus untracked-but-not-ignored files,
so uncommitted work is tested too) and commits it in a fresh repository, so ``git status`` there
shows whatever a program then writes outside its ignored directories.
``processes_under`` finds the processes that name a directory in their command line or run
with their working directory inside it: how a test checks that nothing it started is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .procs import run_command

# Never copied: a local virtualenv is big and belongs to the machine, not the repository.
_SKIP_TOP = (".venv", ".local")
_GIT_ID = ("-c", "user.name=newcomer", "-c", "user.email=newcomer@example.invalid")


def copy_checkout(source: Path, dest: Path) -> Path:
    """Copy the files of the checkout at ``source`` into ``dest`` and commit them there."""
    listed = run_command(
        ["git", "-C", str(source), "ls-files", "-z", "-co", "--exclude-standard"], timeout=60
    ).stdout
    dest.mkdir(parents=True)
    for name in sorted(set(filter(None, listed.split("\0")))):
        src = source / name
        if name.split("/", 1)[0] in _SKIP_TOP or not (src.is_symlink() or src.is_file()):
            continue  # deleted in the working tree, or a submodule
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    run_command(["git", "init", "-q", str(dest)], timeout=60)
    run_command(["git", "-C", str(dest), "add", "-A"], timeout=120)
    run_command(["git", "-C", str(dest), *_GIT_ID, "commit", "-q", "-m", "copy"], timeout=120)
    return dest


def processes_under(dirs: Sequence[Path]) -> list[tuple[int, str]]:
    """(pid, command line) of processes naming one of ``dirs`` or with a cwd inside one."""
    markers = [str(d) for d in dirs]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue  # gone, or a kernel thread
        if any(m in cmdline or cwd == m or cwd.startswith(m + "/") for m in markers):
            found.append((int(entry.name), cmdline.strip()))
    return found


def kill_processes_under(dirs: Sequence[Path]) -> None:
    """SIGKILL every process ``processes_under(dirs)`` finds (a failed test's leftovers)."""
    for pid, _ in processes_under(dirs):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def unmount_under(path: Path) -> None:
    """Lazily unmount whatever is mounted below ``path`` (dockerd's netns), deepest first."""
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30, check=False)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        return sock.connect_ex((host, port)) == 0
