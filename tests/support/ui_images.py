"""Push tiny real images (and multi-arch indexes) to a plain registry with plain HTTP uploads."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.request
from dataclasses import dataclass
from urllib.parse import urljoin

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Pushed:
    digest: str
    size: int  # compressed: config + layers (0 for an index)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _request(method: str, url: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers)


def push_blob(base: str, repo: str, data: bytes) -> str:
    digest = _digest(data)
    status, headers = _request("POST", f"{base}/v2/{repo}/blobs/uploads/", b"")
    assert status == 202, status
    location = urljoin(base, headers["Location"])
    sep = "&" if "?" in location else "?"
    status, _ = _request("PUT", f"{location}{sep}digest={digest}", data,
                         {"Content-Type": "application/octet-stream"})
    assert status == 201, status
    return digest


def push_manifest(base: str, repo: str, reference: str, manifest: dict[str, object],
                  media_type: str) -> str:
    body = json.dumps(manifest, separators=(",", ":")).encode()
    status, headers = _request("PUT", f"{base}/v2/{repo}/manifests/{reference}", body,
                               {"Content-Type": media_type})
    assert status == 201, status
    return headers.get("Docker-Content-Digest") or _digest(body)


def _layer(text: str) -> tuple[bytes, bytes]:
    """(gzip layer, uncompressed tar) holding one small file."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), tar_bytes


def _image_parts(base: str, repo: str, os: str, arch: str, variant: str,
                 text: str) -> tuple[dict[str, object], int]:
    layer, tar_bytes = _layer(text)
    config: dict[str, object] = {
        "architecture": arch, "os": os,
        "rootfs": {"type": "layers", "diff_ids": [_digest(tar_bytes)]},
        "config": {"Cmd": ["/bin/true"]},
    }
    if variant:
        config["variant"] = variant
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": push_blob(base, repo, config_bytes),
                   "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER, "digest": push_blob(base, repo, layer),
                    "size": len(layer)}],
    }
    return manifest, len(config_bytes) + len(layer)


def push_image(base: str, repo: str, tag: str, arch: str = "amd64", os: str = "linux",
               variant: str = "") -> Pushed:
    manifest, size = _image_parts(base, repo, os, arch, variant, f"{repo}:{tag} {arch}\n")
    return Pushed(push_manifest(base, repo, tag, manifest, OCI_MANIFEST), size)


def push_index(base: str, repo: str, tag: str,
               platforms: tuple[tuple[str, str, str], ...]) -> tuple[Pushed, dict[str, Pushed]]:
    """An OCI index over one image per (os, arch, variant); returns it and each child."""
    entries: list[dict[str, object]] = []
    children: dict[str, Pushed] = {}
    for os, arch, variant in platforms:
        manifest, size = _image_parts(base, repo, os, arch, variant, f"{repo}:{tag} {arch}{variant}\n")
        body = json.dumps(manifest, separators=(",", ":")).encode()
        digest = push_manifest(base, repo, _digest(body), manifest, OCI_MANIFEST)
        platform = {"os": os, "architecture": arch, **({"variant": variant} if variant else {})}
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
                        "platform": platform})
        children["/".join(p for p in (os, arch, variant) if p)] = Pushed(digest, size)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return Pushed(push_manifest(base, repo, tag, index, OCI_INDEX), 0), children
