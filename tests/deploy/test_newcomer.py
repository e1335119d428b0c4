"""A newcomer's first minutes, as CI replays them on every run.

A copy of this checkout runs ``scripts/quickstart`` with no Docker daemon reachable and no
images; then the README's demo block (read from README.md, never copied here) runs as written,
line by line, in one ``bash`` without ``set -e``, and each step's outcome is checked; then
SIGTERM to the quick start must leave no process, port, pidfile or socket directory behind.

The copy reuses this interpreter's installed packages (``PYTHON``, ``RG_SKIP_SETUP=1``): a pip
install there would re-point the editable install at a directory about to be deleted.
config/gateway.yaml fixes the ports 5000 and 5050, so the test skips when either is taken.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.checkout import (
    copy_checkout,
    kill_processes_under,
    port_in_use,
    processes_under,
    unmount_under,
)
from support.procs import ManagedProcess, remove_tree, run_command, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
PORTS = (5000, 5050)
GATEWAY = "http://127.0.0.1:5050"
_MARK = re.compile(r"^@@step (\d+) rc=(\d+)@@$", re.M)


@dataclass
class Step:
    command: str
    rc: int
    output: str


@dataclass
class Newcomer:
    clone: Path
    run_dirs: list[Path]  # where the quick start's own dockerd keeps its socket and exec root
    env: dict[str, str]
    quickstart: ManagedProcess

    @property
    def local(self) -> Path:
        return self.clone / ".local"


def _run_dirs(clone: Path) -> list[Path]:
    """Where scripts/quickstart puts its dockerd's socket: /run (or /tmp) + a hash of the root."""
    digest = hashlib.sha256(str(clone).encode()).hexdigest()[:10]
    return [Path(base) / f"rg-quickstart-{digest}" for base in ("/run", "/tmp")]


def _newcomer_env(tmp: Path) -> dict[str, str]:
    """No daemon (DOCKER_HOST names a socket nobody serves), no registry-gateway on PATH."""
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not (Path(d) / "registry-gateway").exists()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(
        PATH=os.pathsep.join([*path, "/usr/sbin", "/sbin"]),
        DOCKER_HOST=f"unix://{tmp / 'no-daemon.sock'}",
        DOCKER_CONFIG=str(tmp / "docker-config"),
        PYTHON=sys.executable,
        RG_SKIP_SETUP="1",
    )
    env.pop("REGISTRY_GATEWAY_CONFIG", None)
    return env


@pytest.fixture
def newcomer(tmp_path: Path) -> Iterator[Newcomer]:
    """A fresh copy of the checkout with scripts/quickstart running in it (ready)."""
    if os.geteuid() != 0:
        pytest.skip("scripts/quickstart starts its own dockerd, which needs root")
    taken = [p for p in PORTS if port_in_use(p)]
    if taken:
        pytest.skip(f"127.0.0.1:{taken} in use; config/gateway.yaml fixes ports 5000 and 5050")
    clone = copy_checkout(REPO, tmp_path / "clone")
    env = _newcomer_env(tmp_path)
    quickstart = ManagedProcess(
        "quickstart", [str(clone / "scripts" / "quickstart")], log_path=tmp_path / "quickstart.log",
        env=env, cwd=clone, death_signal=signal.SIGTERM,
    )
    state = Newcomer(clone, _run_dirs(clone), env, quickstart)
    try:
        quickstart.start()
        quickstart.wait_ready(lambda: _ready(state), timeout=300)
        yield state
    finally:
        quickstart.stop(timeout=90)
        kill_processes_under([clone, *state.run_dirs])
        for path in (clone, *state.run_dirs):
            unmount_under(path)
            remove_tree(path)


def _ready(state: Newcomer) -> bool:
    if not (state.local / "gateway.pid").exists() or not (state.local / "env").exists():
        return False
    with urllib.request.urlopen(f"{GATEWAY}/readyz", timeout=5) as answer:
        return bool(answer.status == 200)


def demo_commands(readme: str) -> list[str]:
    """The commands of the ```sh block after ``<!-- demo ... -->``, continuation lines joined."""
    found = re.search(r"<!-- demo\b.*?-->\s*```sh\n(.*?)```", readme, re.S)
    assert found, "README.md has no <!-- demo --> block"
    commands, pending = [], ""
    for raw in found.group(1).splitlines():
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            commands.append(line)
    return commands


def run_demo(state: Newcomer, commands: list[str]) -> list[Step]:
    """Run the commands in one bash (no ``set -e``), a marker with the status after each."""
    script = ["exec 2>&1"]
    for index, command in enumerate(commands):
        script += [command, f"printf '\\n@@step {index} rc=%d@@\\n' $?"]
    path = state.clone.parent / "demo.sh"
    path.write_text("\n".join(script) + "\n")
    result = run_command(["bash", str(path)], env=state.env, cwd=state.clone, check=False,
                         timeout=600)
    parts = _MARK.split(result.stdout)
    steps = [Step(commands[int(parts[i + 1])], int(parts[i + 2]), parts[i])
             for i in range(0, len(parts) - 2, 3)]
    assert len(steps) == len(commands), f"the demo stopped early:\n{result.stdout}"
    return steps


def step(steps: list[Step], needle: str) -> Step:
    matching = [s for s in steps if needle in s.command.split("#", 1)[0]]
    assert len(matching) == 1, f"expected one demo step with {needle!r}: {steps}"
    return matching[0]


def check_demo(steps: list[Step]) -> None:
    assert steps[0].command.split("#", 1)[0].strip() == ". .local/env"
    login = step(steps, "docker login")
    assert "--password-stdin" in login.command
    assert login.rc == 0 and "Login Succeeded" in login.output, login
    tag = step(steps, "docker tag busybox")
    push = step(steps, "docker push")
    assert push.rc == 0 and "digest: sha256:" in push.output, push
    pull = step(steps, "docker pull")
    assert pull.rc != 0 and "pull access denied" in pull.output, pull
    explain = step(steps, "registry-gateway explain bob myteam/app pull")
    assert explain.output.strip().startswith("deny: rule 0 "), explain
    for other in steps:
        if other not in (pull, explain):
            assert other.rc == 0, other
    assert tag.output.strip() == "", tag


def test_readme_demo_on_a_fresh_machine(newcomer: Newcomer) -> None:
    env_file = (newcomer.local / "env").read_text()
    sock = next(d / "docker.sock" for d in newcomer.run_dirs if d.exists())
    assert f"export DOCKER_HOST=unix://{sock}\n" in env_file  # it started a daemon of its own
    assert "making the example image 'busybox'" in newcomer.quickstart.log_tail(200)

    steps = run_demo(newcomer, demo_commands((newcomer.clone / "README.md").read_text()))
    check_demo(steps)
    audit = (newcomer.local / "audit.jsonl").read_text()
    assert '"user":"alice"' in audit.replace(" ", "")

    gateway_pid = int((newcomer.local / "gateway.pid").read_text())
    assert newcomer.quickstart.pid is not None
    os.kill(newcomer.quickstart.pid, signal.SIGTERM)
    wait_until(lambda: not newcomer.quickstart.running, timeout=120, what="quick start exit")
    wait_until(lambda: not Path(f"/proc/{gateway_pid}").exists(), timeout=10, what="gateway gone")
    assert not (newcomer.local / "gateway.pid").exists()
    assert not (newcomer.local / "env").exists()
    assert processes_under([newcomer.clone, *newcomer.run_dirs]) == []
    assert [p for p in PORTS if port_in_use(p)] == []
    assert not any(d.exists() for d in newcomer.run_dirs)
    status = run_command(["git", "-C", str(newcomer.clone), "status", "--porcelain"]).stdout
    assert status == "", f"the quick start left files git sees:\n{status}"
