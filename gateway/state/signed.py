"""Text values in Redis signed with an HMAC of (key name, content): a value written by anyone
without the secret, or moved to another key, reads as absent. Stored as `CONTENT:TAG`."""

from __future__ import annotations

import hashlib
import hmac

TAG_CHARS = 32  # 128 bits of the SHA-256 HMAC


class ValueSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _tag(self, name: str, content: str) -> str:
        mac = hmac.new(self._secret, f"{name}\0{content}".encode(), hashlib.sha256)
        return mac.hexdigest()[:TAG_CHARS]

    def sign(self, name: str, content: str) -> str:
        return f"{content}:{self._tag(name, content)}"

    def open(self, name: str, raw: object) -> str | None:
        """The content of `raw` read under `name`, or None when absent or not signed so."""
        if not isinstance(raw, str):
            return None
        content, _, tag = raw.rpartition(":")
        if not hmac.compare_digest(tag.encode("utf-8", "surrogateescape"),
                                   self._tag(name, content).encode()):
            return None
        return content
