"""The content cache from outside: what docker sends, the cache's counters, the registry's log.

    before = upstream_requests(registry, path)
    ...                                               # a request the cache should answer
    assert upstream_requests(registry, path) == before
    counts = content_counts(gateway.url)              # {"hit": 3.0, "miss": 1.0, ...}
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from support.gateway import base_config
from support.metrics import metric_value
from support.registry import Upstream
from support.security import MANIFEST_TYPE, digest_of

LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# What docker 20+ sends for a pull; the cache learns a tag only from an Accept listing lists.
FULL_ACCEPT = ", ".join((MANIFEST_TYPE, LIST_TYPE, OCI_INDEX, OCI_MANIFEST))
RESULTS = ("hit", "miss", "error", "bypass")
TAG_TTL = 6  # seconds: a moved tag is seen soon, yet a loaded machine does not outlast it mid-test


def cache_config(upstream_url: str, port: int, *, enabled: bool = True,
                 redis_url: str | None = None, key_file: Path | None = None) -> dict[str, Any]:
    """support.gateway's base config with `cache.manifests` set (and Redis, a key file)."""
    config = base_config(upstream_url, port)
    config["cache"]["manifests"] = {"enabled": enabled, "tag_ttl": TAG_TTL}
    if redis_url is not None:
        config["cache"].update(redis_url=redis_url, redis_timeout=0.5)
    if key_file is not None:
        config["token"]["key_file"] = str(key_file)
    return config


def content_counts(base_url: str) -> dict[str, float]:
    return {result: metric_value(base_url, "registry_gateway_content_cache_total",
                                 {"result": result}) for result in RESULTS}


def upstream_requests(upstream: Upstream, path: str, settle: float = 0.3) -> int:
    """How many requests for exactly `path` the registry's access log holds, once it stopped
    growing (the registry writes its line just after the answer)."""
    needle = f" {path} HTTP/1.1\""
    last, stable_since = -1, time.monotonic()
    while True:
        count = upstream.log_path.read_text(errors="replace").count(needle)
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since >= settle:
            return count
        time.sleep(0.05)


def put_upstream(upstream: Upstream, repository: str, reference: str, body: bytes,
                 media_type: str) -> str:
    """A manifest PUT straight at the registry (behind the gateway's back); its digest."""
    request = urllib.request.Request(f"{upstream.url}/v2/{repository}/manifests/{reference}",
                                     data=body, method="PUT",
                                     headers={"Content-Type": media_type})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        digest: str = response.headers["Docker-Content-Digest"]
    assert digest == digest_of(body)
    return digest


def manifest_list(manifest: bytes) -> bytes:
    """A Docker manifest list with `manifest` (schema 2) as its linux/amd64 entry."""
    body = {"schemaVersion": 2, "mediaType": LIST_TYPE, "manifests": [
        {"mediaType": MANIFEST_TYPE, "size": len(manifest), "digest": digest_of(manifest),
         "platform": {"architecture": "amd64", "os": "linux"}}]}
    return json.dumps(body, separators=(",", ":")).encode()


def warm(base_url: str, paths: list[str], headers: dict[str, str]) -> None:
    """GET every path twice (docker's Accept): the first fills the cache, the second must hit."""
    for _ in range(2):
        before = content_counts(base_url)["hit"]
        for path in paths:
            request = urllib.request.Request(f"{base_url}{path}",
                                             headers={"Accept": FULL_ACCEPT, **headers})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200, path
                response.read()
    assert content_counts(base_url)["hit"] == before + len(paths), "the cache did not warm"
