"""Start, probe and stop real programs for the test suite.

Every program runs in its own session with its output in a log file. Waiting for readiness is
bounded, and a program that does not come up is reported with the tail of its log. Stopping is
SIGTERM, then SIGKILL for the whole process group. As a safety net, the kernel kills (or
terminates) each child when the test process dies (``PR_SET_PDEATHSIG``), and an ``atexit`` hook
stops whatever a broken teardown left running. The death signal is set by util-linux's
``setpriv --pdeathsig`` (which then execs the program, same pid) rather than a ``preexec_fn``,
which is unsafe when the test process has threads.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

_LIVE: set[ManagedProcess] = set()
_EXTRA_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class StartupError(RuntimeError):
    """A program exited or did not become ready in time; the message carries its log tail."""


class CommandError(subprocess.CalledProcessError):
    """A command exited non-zero; unlike its base class, ``str()`` shows what it printed."""

    def __str__(self) -> str:
        return (
            f"{_quote(self.cmd)} exited with {self.returncode}\n"
            f"--- stdout ---\n{_tail(self.stdout)}\n--- stderr ---\n{_tail(self.stderr)}"
        )


class CommandTimeout(subprocess.TimeoutExpired):
    """A command ran past its timeout and was killed; ``str()`` shows what it printed."""

    def __str__(self) -> str:
        return (
            f"{_quote(self.cmd)} timed out after {self.timeout} s and was killed\n"
            f"--- stdout ---\n{_tail(self.output)}\n--- stderr ---\n{_tail(self.stderr)}"
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_program(name: str) -> str:
    """The absolute path of ``name`` (also looked up in the sbin directories), or a clear error."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATH])
    found = shutil.which(name, path=search)
    if found is None:
        raise StartupError(f"{name!r} is not installed (not on PATH); run scripts/setup")
    return found


def clean_env(drop: Sequence[str] = (), **overrides: str) -> dict[str, str]:
    """A copy of the environment without the ``drop`` variables, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(overrides)
    return env


def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 120.0,
    input: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion with captured text output; never waits for stdin."""
    try:
        result = subprocess.run(
            list(argv),
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeout(exc.cmd, exc.timeout, _text(exc.output), _text(exc.stderr)) from None
    if check and result.returncode != 0:
        raise CommandError(result.returncode, result.args, result.stdout, result.stderr)
    return result


def remove_tree(path: Path, timeout: float = 120.0) -> None:
    """Delete a directory tree (``rm -rf`` is about twice as fast as shutil on big trees)."""
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        subprocess.run(["rm", "-rf", "--", str(path)], capture_output=True, timeout=timeout)
    shutil.rmtree(path, ignore_errors=True)


def probe_error(exc: Exception) -> str:
    """What a failed probe says, kept as text: a poller that kept the exception itself would
    tie its own frame into a cycle with the traceback, and an HTTPError's open connection would
    then wait for the garbage collector (an "unclosed socket" warning in some later test)."""
    if isinstance(exc, urllib.error.HTTPError):
        exc.close()
    return repr(exc)


def wait_until(
    probe: Callable[[], bool], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``probe`` until it returns true; exceptions count as "not yet". Bounded by timeout."""
    deadline = time.monotonic() + timeout
    last_error: str | None = None
    while True:
        try:
            if probe():
                return
        except Exception as exc:
            last_error = probe_error(exc)
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"{what} not reached within {timeout} s{detail}")
        time.sleep(interval)


def start_on_free_port(start: Callable[[int], T], *, attempts: int = 3) -> T:
    """Call ``start(port)`` with fresh free ports until one does not clash with another program."""
    for attempt in range(attempts):
        try:
            return start(free_port())
        except StartupError as exc:
            if attempt + 1 < attempts and "address already in use" in str(exc).lower():
                continue
            raise
    raise AssertionError("unreachable")


class ManagedProcess:
    """One long-running program with its output appended to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        death_signal: int | None = signal.SIGKILL,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.death_signal = death_signal
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} running={self.running}>"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.stop()  # reap an earlier run that exited by itself, close its log
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"--- {time.strftime('%H:%M:%S')} start: {_quote(self.argv)}\n".encode())
        self._log.flush()
        argv = self.argv
        if self.death_signal:
            signame = signal.Signals(self.death_signal).name.removeprefix("SIG")
            argv = [find_program("setpriv"), f"--pdeathsig={signame}", "--", *argv]
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        _LIVE.add(self)

    def wait_ready(self, probe: Callable[[], bool], *, timeout: float) -> None:
        """Poll ``probe`` until true; on exit or timeout stop the program and raise StartupError."""
        deadline = time.monotonic() + timeout
        last_error: str | None = None
        while True:
            proc = self._proc
            if proc is None:
                raise RuntimeError(f"{self.name} was never started")
            code = proc.poll()
            if code is not None:
                self.stop()
                raise StartupError(
                    f"{self.name} exited with status {code} before it was ready\n"
                    f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
                )
            try:
                if probe():
                    return
            except Exception as exc:
                last_error = probe_error(exc)
            if time.monotonic() >= deadline:
                self.stop()
                raise StartupError(
                    f"{self.name} was not ready within {timeout} s"
                    f" (last probe error: {last_error})\n"
                    f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL the process group. Idempotent."""
        proc = self._proc
        try:
            if proc is None:
                return None
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10.0)
            return proc.returncode
        finally:
            _LIVE.discard(self)
            if self._log is not None:
                self._log.close()
                self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 65536))
                data = fh.read()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_LIVE):
        proc.stop(timeout=5.0)


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _tail(data: str | bytes | None, lines: int = 30) -> str:
    return "\n".join(_text(data).splitlines()[-lines:])


def _quote(cmd: object) -> str:
    if isinstance(cmd, (list, tuple)):
        return " ".join(str(part) for part in cmd)
    return str(cmd)


def kill_processes_mentioning(workdir: Path) -> None:
    """SIGKILL what a daemon of ours left (containerd, shims, conmon): their argv names ``workdir``."""
    marker = str(workdir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def unmount_under(workdir: Path) -> None:
    """Lazily unmount what a daemon left under ``workdir`` (dockerd's netns, podman's overlays),
    deepest first."""
    prefix = str(workdir) + "/"
    mounts = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = _unescape_mount(line.split()[4])
            if point.startswith(prefix):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30, check=False)


def _unescape_mount(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field
