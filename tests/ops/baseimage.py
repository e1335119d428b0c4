"""A Debian base image for the Dockerfile, made with debootstrap (no container registry needed).

The root filesystem tarball is cached under ~/.cache/registry-gateway-tests/, keyed by
everything that goes into it, so only the first run pays for debootstrap (a minute or two).
`gateway_image` and `services_image` build the repository's Dockerfile and
deploy/services/Dockerfile on it, each once per daemon (tests/deploy uses both).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from support import Docker
from support.docker import DOCKER_CLI
from support.procs import remove_tree, run_command

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# CAs this machine adds to Debian's (a TLS-inspecting egress proxy, say): pip inside the image
# build must trust them to reach PyPI. A production base carries the site's CAs the same way.
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
ROOT = Path(__file__).resolve().parents[2]
GATEWAY_IMAGE = "rg-test/registry-gateway:test"
SERVICES_IMAGE = "rg-test/services:test"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "registry-gateway-tests"


def _extra_cas() -> list[Path]:
    return sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []


def cache_key() -> str:
    recipe = {
        "suite": SUITE, "mirror": MIRROR, "variant": "minbase", "packages": PACKAGES,
        "cas": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in _extra_cas()},
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def rootfs_tarball() -> Path:
    """The cached tarball, built first if missing (atomically: a killed run leaves no half file)."""
    target = cache_dir() / f"debian-{SUITE}-{cache_key()}.tar"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rg-debootstrap-", dir=target.parent))
    try:
        root = work / "root"
        run_command(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                     SUITE, str(root), MIRROR], timeout=1200)
        cas = _extra_cas()
        if cas:
            for ca in cas:
                shutil.copy(ca, root / "usr/local/share/ca-certificates" / ca.name)
            run_command(["chroot", str(root), "update-ca-certificates"], timeout=120)
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / leftovers).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = work / "rootfs.tar"
        run_command(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
                    timeout=600)
        os.replace(partial, target)
    finally:
        _unmount_under(work)
        remove_tree(work)
    return target


def _unmount_under(path: Path) -> None:
    """debootstrap may leave /proc or /sys mounted in the new root when it fails."""
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as mounts:
        points = [line.split()[4] for line in mounts if line.split()[4].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30, check=False)


def import_base(docker: Docker) -> str:
    """`docker import` the cached root filesystem (once per daemon); returns the image name."""
    name = f"rg-test/debian-{SUITE}:{cache_key()}"
    if docker.run("image", "inspect", name, check=False).returncode != 0:
        docker.run("import", str(rootfs_tarball()), name, timeout=600)
    return name


def _build(docker: Docker, tag: str, context: Path, base: str) -> None:
    # BuildKit: the classic builder snapshots the whole root filesystem for every instruction,
    # which on the test daemon's vfs storage turns a one-minute build into several.
    run_command([DOCKER_CLI, "build", "--network", "host", "--build-arg", f"BASE={base}",
                 "--tag", tag, str(context)], env={**docker.env(), "DOCKER_BUILDKIT": "1"},
                timeout=1200)


def _missing(docker: Docker, tag: str) -> bool:
    return docker.run("image", "inspect", tag, check=False).returncode != 0


def gateway_image(docker: Docker) -> str:
    """The repository's Dockerfile built on the debootstrapped base, once per daemon (the
    session's dockerd is new each run, so an image it holds was built from these sources)."""
    if _missing(docker, GATEWAY_IMAGE):
        _build(docker, GATEWAY_IMAGE, ROOT, import_base(docker))
    return GATEWAY_IMAGE


def services_image(docker: Docker) -> str:
    """deploy/services/Dockerfile (nginx, redis-server, docker-registry from Debian), once per
    daemon, on the same base as the gateway image."""
    if _missing(docker, SERVICES_IMAGE):
        _build(docker, SERVICES_IMAGE, ROOT / "deploy" / "services", import_base(docker))
    return SERVICES_IMAGE
