"""The gateway's EC P-256 signing key, its libtrust key id, and secrets derived from it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def libtrust_kid(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key id docker/libtrust derives: base32 of the SPKI's SHA-256, in groups of four."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


@dataclass(frozen=True)
class SigningKey:
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    kid: str

    @classmethod
    def from_private_key(cls, key: ec.EllipticCurvePrivateKey) -> SigningKey:
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("the token key must be an EC P-256 key")
        return cls(key, libtrust_kid(key.public_key()))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_private_key(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: expected an EC P-256 private key")
        return cls.from_private_key(key)

    def secret(self, purpose: bytes) -> bytes:
        """A secret derived from the private key, for HMACs that must agree across replicas."""
        raw = self.private_key.private_numbers().private_value.to_bytes(32, "big")
        return hmac.new(raw, purpose, hashlib.sha256).digest()
