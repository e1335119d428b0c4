"""A small synchronous registry client (http.client) for driving the gateway in the ops tests."""

from __future__ import annotations

import hashlib
import http.client
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from support.credentials import basic, bearer

SERVICE = "gateway.test"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class RegistryClient:
    """Speaks to one gateway on 127.0.0.1; remembers every token it was given (for leak checks)."""

    port: int
    tokens: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                          response.read())
        finally:
            conn.close()

    def token(self, scopes: list[str], user: str | None = None, password: str | None = None,
              headers: dict[str, str] | None = None) -> Answer:
        query = urlencode([("service", SERVICE), *(("scope", s) for s in scopes)])
        auth = basic(user, password or "") if user is not None else {}
        answer = self.request("GET", f"/token?{query}", {**auth, **(headers or {})})
        if answer.status == 200:
            self.tokens.append(answer.json()["token"])
        return answer

    def bearer_for(self, user: str, password: str, *scopes: str) -> dict[str, str]:
        answer = self.token(list(scopes), user, password)
        assert answer.status == 200, answer
        return bearer(answer.json()["token"])

    def push_blob(self, repository: str, data: bytes, auth: dict[str, str]) -> str:
        digest = digest_of(data)
        started = self.request("POST", f"/v2/{repository}/blobs/uploads/", auth)
        assert started.status == 202, started
        location = urlsplit(started.headers["location"])
        target = f"{location.path}?{location.query}&digest={digest}"
        done = self.request("PUT", target, {**auth, "Content-Type": "application/octet-stream"},
                            data)
        assert done.status == 201, done
        return digest

    def push_image(self, repository: str, tag: str, layer: bytes,
                   auth: dict[str, str]) -> str:
        """Two blobs and a schema 2 manifest; returns the manifest digest."""
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        config_digest = self.push_blob(repository, config, auth)
        layer_digest = self.push_blob(repository, layer, auth)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": config_digest},
            "layers": [{"mediaType": LAYER_TYPE, "size": len(layer), "digest": layer_digest}],
        }).encode()
        answer = self.request("PUT", f"/v2/{repository}/manifests/{tag}",
                              {**auth, "Content-Type": MANIFEST_TYPE}, manifest)
        assert answer.status == 201, answer
        return digest_of(manifest)

    def pull_image(self, repository: str, tag: str, auth: dict[str, str]) -> int:
        """GET the manifest and every blob it names; returns the bytes received."""
        manifest = self.request("GET", f"/v2/{repository}/manifests/{tag}",
                                {**auth, "Accept": MANIFEST_TYPE})
        assert manifest.status == 200, manifest
        total = len(manifest.body)
        document = manifest.json()
        for blob in [document["config"], *document["layers"]]:
            answer = self.request("GET", f"/v2/{repository}/blobs/{blob['digest']}", auth)
            assert answer.status == 200, answer
            total += len(answer.body)
        return total
