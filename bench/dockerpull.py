"""`docker pull` of 8 distinct 5-layer images (~40 MB each) at once: wall time per path.

A private dockerd (tests/support/docker.py's `start_dockerd`: vfs storage, its own containerd)
pulls the same 8 images from the registry directly and through each gateway variant. The images
are pushed once to the upstream, so every path serves the very same bytes. Between pulls the
daemon's images are removed (`docker image rm`, then `docker image prune`), so each round
downloads and extracts every layer again.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from blobs import _BLOCK, Endpoint
from machine import log, rotations
from stack import PASSWORD, USER, cpu_seconds
from support.docker import DOCKER_CLI, Docker, start_dockerd
from workload import image_manifest, push_bytes, push_manifest, sha256

IMAGES, LAYERS, LAYER_BYTES = 8, 5, 8 * 1024 * 1024


@dataclass(frozen=True)
class PullTarget:
    name: str
    host: str  # "127.0.0.1:PORT", as docker names the registry
    pids: tuple[int, ...]
    login: bool  # a gateway: `docker login` first


class Recorder(Protocol):
    def add(self, metric: str, path: str, value: float) -> None: ...


def _layer(seed: int) -> tuple[bytes, str]:
    """A gzip'd tar with one file of LAYER_BYTES (unique head + random block); and its diff_id."""
    data = seed.to_bytes(32, "big") + _BLOCK[:LAYER_BYTES - 32]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(f"data/{seed}.bin")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    # Level 0: stored deflate blocks, a valid gzip stream that costs no CPU to make or unpack
    # beyond the checksum; random data would not compress anyway.
    return gzip.compress(tar_bytes, compresslevel=0, mtime=0), sha256(tar_bytes)


def push_images(direct: Endpoint) -> list[str]:
    """IMAGES images `bench/pullN:v1` of LAYERS distinct layers each; their repositories."""
    names = []
    with direct.connect() as conn:
        for i in range(IMAGES):
            repository = f"bench/pull{i}"
            layers, diff_ids = [], []
            for k in range(LAYERS):
                blob, diff_id = _layer(50_000 + i * LAYERS + k)
                layers.append((push_bytes(conn, direct, repository, blob), len(blob)))
                diff_ids.append(diff_id)
            config = json.dumps({"architecture": "amd64", "os": "linux",
                                 "config": {"Cmd": ["/bin/sh"]},
                                 "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
            config_digest = push_bytes(conn, direct, repository, config)
            push_manifest(conn, direct, repository, "v1",
                          image_manifest(config_digest, len(config), layers))
            names.append(repository)
    return names


def _pull_all(docker: Docker, refs: Sequence[str]) -> float:
    env = docker.env()
    started = time.perf_counter()
    procs = [subprocess.Popen([DOCKER_CLI, "pull", "-q", ref], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for ref in refs]
    failed = []
    for ref, proc in zip(refs, procs, strict=True):
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            failed.append(f"{ref}: {out.strip()}")
    elapsed = time.perf_counter() - started
    if failed:
        raise RuntimeError("docker pull failed:\n" + "\n".join(failed))
    return elapsed


def _clear(docker: Docker, refs: Sequence[str]) -> None:
    docker.run("image", "rm", *refs, timeout=300)
    docker.run("image", "prune", "-f", timeout=300)
    left = docker.run("images", "-q").stdout.split()
    if left:
        raise RuntimeError(f"images left after rm and prune: {left}")


def docker_pulls(direct: Endpoint, targets: Sequence[PullTarget], rounds: int,
                 results: Recorder) -> None:
    started = time.perf_counter()
    repositories = push_images(direct)
    log(f"pushed {IMAGES} images x {LAYERS} layers in {time.perf_counter() - started:.1f} s")
    daemon = start_dockerd()
    try:
        docker = daemon.client()
        for target in targets:
            if target.login:
                docker.login(target.host, USER, PASSWORD)
        # One image first, unmeasured: the daemon's first pull also sets up its own state.
        first = [f"{targets[0].host}/{repositories[0]}:v1"]
        _pull_all(docker, first)
        _clear(docker, first)
        for order in rotations(targets, rounds):
            for target in order:
                refs = [f"{target.host}/{name}:v1" for name in repositories]
                cpu = cpu_seconds(target.pids)
                seconds = _pull_all(docker, refs)
                results.add("docker_pull", target.name, seconds)
                results.add("docker_pull_cpu", target.name, cpu_seconds(target.pids) - cpu)
                log(f"docker pull x {IMAGES} via {target.name}: {seconds:.2f} s")
                _clear(docker, refs)
    finally:
        daemon.stop()
