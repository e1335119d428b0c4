"""Files the config names must exist and hold the right thing: found by check-config, not at start."""

from __future__ import annotations

import ssl
from pathlib import Path

from gateway.config.problems import Problem
from gateway.config.schema import Settings
from gateway.keys import SigningKey

MIN_SESSION_SECRET_BYTES = 32


def _readable(location: str, path: Path) -> Problem | None:
    try:
        path.read_bytes()
    except OSError as exc:
        return Problem(location, f"cannot read {str(path)!r}: {exc.strerror or exc}")
    return None


def file_problems(settings: Settings) -> list[Problem]:
    problems: list[Problem] = []
    key_file = settings.token.key_file
    if key_file is not None:
        problem = _readable("token.key_file", key_file)
        if problem is None:
            try:
                SigningKey.load(key_file)
            except (ValueError, TypeError) as exc:
                problem = Problem("token.key_file", f"not an unencrypted EC P-256 PEM key: {exc}")
        problems += [problem] if problem else []
    secret_file = settings.ui.session_secret_file
    if secret_file is not None:
        problem = _readable("ui.session_secret_file", secret_file)
        if problem is None and len(secret_file.read_bytes().strip()) < MIN_SESSION_SECRET_BYTES:
            problem = Problem("ui.session_secret_file",
                              f"needs at least {MIN_SESSION_SECRET_BYTES} bytes of secret")
        problems += [problem] if problem else []
    tls = settings.server.tls
    if tls is not None:
        found = [p for p in (_readable("server.tls.cert", tls.cert),
                             _readable("server.tls.key", tls.key)) if p]
        if not found:
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                    str(tls.cert), str(tls.key))
            except (ssl.SSLError, ValueError) as exc:
                found.append(Problem("server.tls", f"certificate and key do not load: {exc}"))
        problems += found
    upstream = settings.upstream  # read once at start: a missing file is refused here
    for name in ("ca_file", "client_cert", "client_key", "password_file"):
        path = getattr(upstream, name)
        problem = _readable(f"upstream.{name}", path) if path is not None else None
        problems += [problem] if problem else []
    return problems
