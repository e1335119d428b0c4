"""Blob content, push and pull over the registry API, every pull checked against its digest."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from httpclient import Connection, HttpError, split_target

MiB = 1024 * 1024
_BLOCK = os.urandom(8 * MiB)  # random, so nothing on the way could compress it
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


class DigestMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class Blob:
    """`size` bytes made of a unique 32-byte header and the shared random block, repeated."""

    seed: int
    size: int

    def pieces(self) -> Iterator[memoryview]:
        header = self.seed.to_bytes(32, "big")
        yield memoryview(header)
        left = self.size - len(header)
        block = memoryview(_BLOCK)
        while left > 0:
            take = min(left, len(block))
            yield block[:take]
            left -= take

    @property
    def digest(self) -> str:
        return _digest_of(self.seed, self.size)


_DIGESTS: dict[tuple[int, int], str] = {}


def _digest_of(seed: int, size: int) -> str:
    key = (seed, size)
    if key not in _DIGESTS:
        hasher = hashlib.sha256()
        for piece in Blob(seed, size).pieces():
            hasher.update(piece)
        _DIGESTS[key] = "sha256:" + hasher.hexdigest()
    return _DIGESTS[key]


@dataclass(frozen=True)
class Endpoint:
    """One way to reach the registry API: host, port and the Authorization header it needs.

    `pids`: the processes whose CPU time is this path's cost (the proxy; the registry for direct).
    """

    name: str
    host: str
    port: int
    authorization: str | None = None
    pids: tuple[int, ...] = ()
    tls: ssl.SSLContext | None = None  # the client's context when the path serves TLS

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.authorization:
            headers["Authorization"] = self.authorization
        return headers

    def connect(self) -> Connection:
        return Connection(self.host, self.port, tls=self.tls)


def push_blob(endpoint: Endpoint, repository: str, blob: Blob) -> float:
    """POST an upload, then PUT the whole body with its digest (a monolithic upload); seconds."""
    with endpoint.connect() as conn:
        started = time.perf_counter()
        reply = conn.request("POST", f"/v2/{repository}/blobs/uploads/", endpoint.headers())
        if reply.status != 202:
            raise HttpError(f"{endpoint.name}: POST upload answered {reply.status}: {reply.body[:200]!r}")
        target = split_target(reply.headers["location"])
        target += ("&" if "?" in target else "?") + f"digest={blob.digest}"
        reply = conn.request("PUT", target, endpoint.headers(
            {"Content-Type": "application/octet-stream"}), body=blob.pieces(), length=blob.size)
        elapsed = time.perf_counter() - started
    if reply.status != 201 or reply.headers.get("docker-content-digest") != blob.digest:
        raise HttpError(f"{endpoint.name}: PUT blob answered {reply.status}: {reply.body[:200]!r}")
    return elapsed


def pull_blob(endpoint: Endpoint, repository: str, digest: str, size: int,
              conn: Connection | None = None) -> float:
    """GET a blob, hashing it as it arrives (as a client does); raise unless it matches. Seconds."""
    hasher = hashlib.sha256()
    own = conn is None
    connection = conn if conn is not None else endpoint.connect()
    try:
        started = time.perf_counter()
        reply = connection.request("GET", f"/v2/{repository}/blobs/{digest}", endpoint.headers(),
                                   sink=hasher.update)
        elapsed = time.perf_counter() - started
    finally:
        if own:
            connection.close()
    if reply.status != 200:
        raise HttpError(f"{endpoint.name}: GET blob answered {reply.status}")
    if reply.body_bytes != size or "sha256:" + hasher.hexdigest() != digest:
        raise DigestMismatch(f"{endpoint.name}: blob {digest} arrived with another digest "
                             f"({reply.body_bytes} of {size} bytes)")
    return elapsed


def push_image(endpoint: Endpoint, repository: str, tag: str, layer: Blob) -> tuple[str, bytes]:
    """A small image (config + one layer) under `tag`; returns the manifest's digest and bytes."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    with endpoint.connect() as conn:
        reply = conn.request("POST", f"/v2/{repository}/blobs/uploads/", endpoint.headers())
        target = split_target(reply.headers["location"])
        target += ("&" if "?" in target else "?") + f"digest={config_digest}"
        conn.request("PUT", target, endpoint.headers(), body=config)
    push_blob(endpoint, repository, layer)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": config_digest},
        "layers": [{"mediaType": LAYER_TYPE, "size": layer.size, "digest": layer.digest}],
    }, indent=3).encode()
    with endpoint.connect() as conn:
        reply = conn.request("PUT", f"/v2/{repository}/manifests/{tag}",
                             endpoint.headers({"Content-Type": MANIFEST_TYPE}), body=manifest)
    if reply.status != 201:
        raise HttpError(f"manifest PUT answered {reply.status}: {reply.body[:200]!r}")
    return "sha256:" + hashlib.sha256(manifest).hexdigest(), manifest


def check_manifest(endpoint: Endpoint, repository: str, tag: str, digest: str) -> None:
    """One manifest GET through `endpoint`, digest checked, before it is put under load."""
    hasher = hashlib.sha256()
    with endpoint.connect() as conn:
        reply = conn.request("GET", f"/v2/{repository}/manifests/{tag}",
                             endpoint.headers({"Accept": MANIFEST_TYPE}), sink=hasher.update)
    if reply.status != 200:
        raise HttpError(f"{endpoint.name}: manifest GET answered {reply.status}")
    if "sha256:" + hasher.hexdigest() != digest:
        raise DigestMismatch(f"{endpoint.name}: manifest arrived with another digest")
