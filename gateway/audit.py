"""The audit trail: one JSON line per access decision, failed login and completed push/pull/delete."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("registry_gateway.audit")

# Field names that would carry a secret; a caller passing one is a bug, so the value never leaves.
SECRET_FIELDS = frozenset({"password", "token", "authorization", "cookie", "refresh_token",
                           "access_token", "password_hash", "secret"})
REDACTED = "[redacted]"
MAX_CALL_SITES = 256  # distinct field-name tuples remembered as free of secrets
FILE_MODE = 0o640  # user names and client addresses: not for every local account


class AuditLog:
    """Writes JSON lines to stderr or a file; `reopen()` (on SIGUSR1) follows log rotation.

    Callers pass only fields that are safe to keep: never a password, token or header.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stream: IO[str] = self._open()
        # Two lines per pull, so per-line costs count: one encoder, the time's seconds
        # formatted once per second, and the field names of each call site checked once.
        self._encoder = json.JSONEncoder(separators=(",", ":"), default=str)
        self._second = -1
        self._second_text = ""
        self._clean_names: set[tuple[str, ...]] = set()

    @property
    def path(self) -> Path | None:
        return self._path

    def _open(self) -> IO[str]:
        if self._path is None:
            return sys.stderr
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1)

    def reopen(self) -> None:
        """Open the path afresh (logrotate renamed the old file); keep the old one on failure."""
        if self._path is None:
            return
        with self._lock:
            try:
                new = self._open()
            except OSError as exc:
                log.error("cannot reopen the audit file %s, still writing the old one: %s",
                          self._path, exc)
                return
            old, self._stream = self._stream, new
            old.close()

    def _now(self) -> str:
        """UTC to the millisecond, as datetime.isoformat(timespec="milliseconds") + "Z"."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._second_text}.{int((now - second) * 1000):03d}Z"

    def write(self, event: str, **fields: Any) -> None:
        names = tuple(fields)
        if names not in self._clean_names:
            if any(k.lower() in SECRET_FIELDS for k in names):
                fields = {k: (REDACTED if k.lower() in SECRET_FIELDS else v)
                          for k, v in fields.items()}
            elif len(self._clean_names) < MAX_CALL_SITES:
                self._clean_names.add(names)
        line = self._encoder.encode({"time": self._now(), "event": event, **fields})
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                # A full disk or closed stream must not turn a request into a 500.
                pass

    def close(self) -> None:
        if self._path is not None:
            with self._lock:
                self._stream.close()
