"""The security tests' world: adversarial accounts on top of support/gateway.py's, and raw HTTP
on asyncio streams (so nothing normalises our paths), tokens and image seeding.

Accounts on top of support/gateway.py's (alice in myteam, bob with no grants, ...):
- sam: the only member of secretteam, which may pull, push and delete `secret/**`;
- eve: named in `secret/**`'s delete list but nowhere else: a delete-only principal, which
  under the contract's rules (delete needs pull) has no access at all;
- pat: may push (hence pull) `drop/*` and nothing else: a pusher without access to `secret/**`;
- frank: a second member of myteam, so two identities may push the same repository.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from support.gateway import PASSWORDS, base_config, password_hash

SERVICE = "gateway.test"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
# Headers that legitimately differ between two otherwise identical answers.
VOLATILE = frozenset({"date", "x-request-id"})
EXTRA_PASSWORDS = {"sam": "sam-secret", "eve": "eve-secret", "pat": "pat-secret",
                   "frank": "frank-secret"}
ALL_PASSWORDS = {**PASSWORDS, **EXTRA_PASSWORDS}


def security_config(upstream_url: str, port: int, key_file: Path) -> dict[str, Any]:
    config = base_config(upstream_url, port)
    config["token"]["key_file"] = str(key_file)
    for name in EXTRA_PASSWORDS:
        config["users"][name] = {"password_hash": password_hash(EXTRA_PASSWORDS[name])}
    config["teams"]["myteam"]["members"].append("frank")
    config["teams"]["secretteam"] = {"members": ["sam"]}
    config["repositories"] += [
        {"match": "secret/**", "pull": ["team:secretteam"], "push": ["user:sam"],
         "delete": ["user:sam", "user:eve"], "comment": "private; eve may only delete"},
        {"match": "drop/*", "push": ["user:pat"], "comment": "pat's own"},
    ]
    return config


@dataclass(frozen=True)
class RawResponse:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)

    def comparable(self, names: Iterable[str] = ()) -> tuple[object, ...]:
        """Everything but Date and X-Request-Id, with the names the client sent masked."""
        def mask(text: str) -> str:
            for name in names:
                text = text.replace(name, "<NAME>")
            return text

        headers = tuple((k.lower(), mask(v)) for k, v in self.headers if k.lower() not in VOLATILE)
        return self.status, self.reason, headers, mask(self.body.decode("latin-1"))


def parse_response(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    _, status, reason = [*lines[0].split(" ", 2), ""][:3]
    headers = tuple((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    return RawResponse(int(status), reason, headers, body)


async def send_raw(port: int, data: bytes, wait: float = 15.0) -> RawResponse | None:
    """Send bytes as they are; the response read until the server closes (None: no response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(wait):
            received = await reader.read(-1)
    except ConnectionResetError:
        received = b""
    finally:
        writer.close()
    return parse_response(received) if received else None


async def raw_request(port: int, method: str, target: str | bytes,
                      headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
                      body: bytes = b"") -> RawResponse:
    """One HTTP/1.1 request on its own connection, the target sent byte for byte."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    raw_target = target if isinstance(target, bytes) else target.encode("latin-1")
    head = [method.encode() + b" " + raw_target + b" HTTP/1.1",
            f"Host: 127.0.0.1:{port}".encode(), b"Connection: close"]
    head += [f"{k}: {v}".encode("latin-1") for k, v in pairs]
    if body or method in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(body)}".encode())
    response = await send_raw(port, b"\r\n".join(head) + b"\r\n\r\n" + body)
    assert response is not None, f"no response to {method} {target!r}"
    return response


async def fetch_token(port: int, credentials: Mapping[str, str], *scopes: str,
                      service: str = SERVICE) -> dict[str, Any]:
    query = "&".join([f"service={service}", *(f"scope={s}" for s in scopes)])
    response = await raw_request(port, "GET", f"/token?{query}", credentials)
    assert response.status == 200, response
    body: dict[str, Any] = response.json()
    return body


async def push_blob(port: int, repo: str, data: bytes, headers: Mapping[str, str]) -> str:
    """POST then PUT through the gateway, as docker does; the blob's digest."""
    started = await raw_request(port, "POST", f"/v2/{repo}/blobs/uploads/", headers)
    assert started.status == 202, started
    location = urlsplit(started.header("Location") or "")
    digest = digest_of(data)
    done = await raw_request(port, "PUT", f"{location.path}?{location.query}&digest={digest}",
                             {**headers, "Content-Type": "application/octet-stream"}, data)
    assert done.status == 201, done
    return digest


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# Seeding a plain registry directly (no gateway in between).

def _upstream(method: str, url: str, body: bytes | None = None,
              headers: Mapping[str, str] | None = None) -> tuple[int, Message]:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers  # case-insensitive, as Go canonicalises


def start_upload(base: str, repo: str) -> tuple[str, str]:
    """A fresh upload session straight at the registry: (uuid, absolute Location)."""
    status, headers = _upstream("POST", f"{base}/v2/{repo}/blobs/uploads/", b"")
    assert status == 202, status
    return headers["Docker-Upload-UUID"], urljoin(base, headers["Location"])


def seed_blob(base: str, repo: str, data: bytes) -> str:
    digest = digest_of(data)
    _, location = start_upload(base, repo)
    status, _ = _upstream("PUT", f"{location}&digest={digest}", data,
                          {"Content-Type": "application/octet-stream"})
    assert status == 201, status
    return digest


def image_manifest(config: bytes, layer: bytes) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": digest_of(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer), "digest": digest_of(layer)}],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SeededImage:
    repository: str
    tag: str
    manifest: bytes
    manifest_digest: str
    layer_digest: str
    upload_uuid: str
    upload_path: str  # path and query of an open upload session, as the registry issued it


def seed_image(base: str, repo: str, tag: str, salt: str) -> SeededImage:
    """A real (tiny) image with a tag and one open upload session, pushed straight upstream."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "salt": salt}).encode()
    layer = f"layer of {repo} {salt}".encode()
    seed_blob(base, repo, config)
    layer_digest = seed_blob(base, repo, layer)
    manifest = image_manifest(config, layer)
    status, headers = _upstream("PUT", f"{base}/v2/{repo}/manifests/{tag}", manifest,
                                {"Content-Type": MANIFEST_TYPE})
    assert status == 201, status
    uuid, location = start_upload(base, repo)
    parts = urlsplit(location)
    return SeededImage(repo, tag, manifest, headers["Docker-Content-Digest"], layer_digest,
                       uuid, f"{parts.path}?{parts.query}")
