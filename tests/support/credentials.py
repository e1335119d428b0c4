"""What a client presents: Authorization headers, and the token key file a gateway signs with.

    headers = basic("alice")                  # the password from support.gateway.PASSWORDS
    headers = basic("sam", "sam-secret")      # any other account's
    headers = bearer(token)
    config["token"]["key_file"] = str(write_key(tmp_path / "token.pem"))
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from support.gateway import PASSWORDS


def basic_value(user: str, password: str | None = None) -> str:
    """The `Authorization` value for HTTP Basic; without `password`, the test account's."""
    secret = f"{user}:{PASSWORDS[user] if password is None else password}"
    return "Basic " + base64.b64encode(secret.encode()).decode()


def basic(user: str, password: str | None = None) -> dict[str, str]:
    return {"Authorization": basic_value(user, password)}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def write_key(path: Path) -> Path:
    """An EC P-256 key in PEM for `token.key_file` (replicas that share it agree on tokens and
    cache signatures); `read_key(path)` gives it back for signing tokens in a test."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def read_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey), path
    return key
