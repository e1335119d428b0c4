"""The manifest workload of issue 14: 1,000 small images over 100 repositories, pushed once.

Each image is distinct: a config blob and one 1 KiB layer of its own, and a schema-2 manifest
under `bench/rNN:tK`. The load tool cycles through them by digest or by tag (load.Cycle), with
the token a client would hold for that repository. `fill_manifests()` pushes the large OCI
manifests that fill a bounded cache for the RSS row.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from blobs import CONFIG_TYPE, LAYER_TYPE, MANIFEST_TYPE, DigestMismatch, Endpoint
from httpclient import Connection, HttpError, split_target

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
# What docker 20.10 asks for (lists and indexes too): a cache may learn a tag only from an
# answer that cannot be a registry's rewrite for a client that accepts no list.
ACCEPT = ", ".join((MANIFEST_TYPE, "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.oci.image.index.v1+json", OCI_MANIFEST))


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str
    digest: str  # of the manifest
    size: int  # manifest bytes

    @property
    def by_digest(self) -> str:
        return f"/v2/{self.repository}/manifests/{self.digest}"

    @property
    def by_tag(self) -> str:
        return f"/v2/{self.repository}/manifests/{self.tag}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_bytes(conn: Connection, endpoint: Endpoint, repository: str, data: bytes) -> str:
    """A blob in two requests (POST, then PUT with the body and its digest); its digest."""
    digest = sha256(data)
    reply = conn.request("POST", f"/v2/{repository}/blobs/uploads/", endpoint.headers())
    if reply.status != 202:
        raise HttpError(f"{endpoint.name}: POST upload answered {reply.status}")
    target = split_target(reply.headers["location"])
    target += ("&" if "?" in target else "?") + f"digest={digest}"
    reply = conn.request("PUT", target, endpoint.headers(
        {"Content-Type": "application/octet-stream"}), body=data)
    if reply.status != 201:
        raise HttpError(f"{endpoint.name}: PUT blob answered {reply.status}: {reply.body[:200]!r}")
    return digest


def push_manifest(conn: Connection, endpoint: Endpoint, repository: str, reference: str,
                  manifest: bytes, media_type: str = MANIFEST_TYPE) -> str:
    reply = conn.request("PUT", f"/v2/{repository}/manifests/{reference}",
                         endpoint.headers({"Content-Type": media_type}), body=manifest)
    digest = sha256(manifest)
    if reply.status != 201 or reply.headers.get("docker-content-digest") != digest:
        raise HttpError(f"{endpoint.name}: manifest PUT answered {reply.status}: "
                        f"{reply.body[:200]!r}")
    return digest


def image_manifest(config_digest: str, config_size: int, layers: Sequence[tuple[str, int]],
                   media_type: str = MANIFEST_TYPE, layer_type: str = LAYER_TYPE) -> bytes:
    config_type = CONFIG_TYPE if media_type == MANIFEST_TYPE else OCI_CONFIG
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "size": config_size, "digest": config_digest},
        "layers": [{"mediaType": layer_type, "size": size, "digest": digest}
                   for digest, size in layers],
    }, indent=3).encode()


def _push_small_image(conn: Connection, endpoint: Endpoint, repository: str, tag: str) -> Image:
    layer = os.urandom(1024)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Labels": {"bench": f"{repository}:{tag}"}},
                         "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
    config_digest = push_bytes(conn, endpoint, repository, config)
    layer_digest = push_bytes(conn, endpoint, repository, layer)
    manifest = image_manifest(config_digest, len(config), [(layer_digest, len(layer))])
    digest = push_manifest(conn, endpoint, repository, tag, manifest)
    return Image(repository, tag, digest, len(manifest))


def _in_parallel(count: int, threads: int, endpoint: Endpoint,
                 one: Callable[[Connection, int], Image]) -> list[Image]:
    """`one(conn, i)` for i in range(count), on `threads` keep-alive connections."""
    def worker(start: int) -> list[Image]:
        with endpoint.connect() as conn:
            return [one(conn, i) for i in range(start, count, threads)]

    with ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(worker, range(threads)))
    return sorted((image for part in parts for image in part), key=lambda i: (i.repository, i.tag))


def seed_workload(endpoint: Endpoint, repositories: int = 100, tags: int = 10,
                  threads: int = 3) -> list[Image]:
    """Push `repositories` x `tags` distinct small images through `endpoint` (direct)."""
    def one(conn: Connection, i: int) -> Image:
        return _push_small_image(conn, endpoint, f"bench/r{i // tags:02d}", f"t{i % tags}")

    return _in_parallel(repositories * tags, threads, endpoint, one)


def fill_manifests(endpoint: Endpoint, repository: str, count: int, size: int,
                   threads: int = 3) -> list[Image]:
    """`count` distinct OCI manifests of about `size` bytes each (an annotation pads them),
    all naming the same config and layer: what fills a byte-bounded manifest cache."""
    with endpoint.connect() as conn:
        layer = os.urandom(1024)
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
        config_digest = push_bytes(conn, endpoint, repository, config)
        layer_digest = push_bytes(conn, endpoint, repository, layer)
    base = json.loads(image_manifest(config_digest, len(config), [(layer_digest, len(layer))],
                                     OCI_MANIFEST, OCI_LAYER))

    def one(conn: Connection, i: int) -> Image:
        padding = os.urandom(max(0, size - 400) // 2).hex()
        manifest = json.dumps({**base, "annotations": {"bench.padding": padding}}).encode()
        tag = f"f{i}"
        digest = push_manifest(conn, endpoint, repository, tag, manifest, OCI_MANIFEST)
        return Image(repository, tag, digest, len(manifest))

    return _in_parallel(count, threads, endpoint, one)


def tokens_for(images: Sequence[Image], token: Callable[[str], str]) -> dict[str, str]:
    """One pull token per repository, as a client holds after `/token` (the gateway's own)."""
    return {repo: "Bearer " + token(f"repository:{repo}:pull")
            for repo in sorted({i.repository for i in images})}


def requests(images: Sequence[Image], by: str,
             authorization: Callable[[Image], str | None]) -> list[tuple[str, dict[str, str]]]:
    """(path, headers) per image, by "digest" or by "tag", for load.Cycle."""
    out = []
    for image in images:
        headers = {"Accept": ACCEPT}
        auth = authorization(image)
        if auth:
            headers["Authorization"] = auth
        out.append((image.by_digest if by == "digest" else image.by_tag, headers))
    return out


def verify(endpoint: Endpoint, images: Sequence[Image], by: str,
           headers: Callable[[Image], Mapping[str, str]], threads: int = 2) -> int:
    """GET every image's manifest through `endpoint`, each body checked against its digest."""
    def one(conn: Connection, i: int) -> Image:
        image = images[i]
        hasher = hashlib.sha256()
        path = image.by_digest if by == "digest" else image.by_tag
        reply = conn.request("GET", path, dict(headers(image)), sink=hasher.update)
        if reply.status != 200:
            raise HttpError(f"{endpoint.name}: GET {path} answered {reply.status}")
        if "sha256:" + hasher.hexdigest() != image.digest:
            raise DigestMismatch(f"{endpoint.name}: {path} arrived with another digest")
        return image

    return len(_in_parallel(len(images), threads, endpoint, one))
