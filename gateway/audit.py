"""The audit trail: one JSON line per access decision and per completed push, pull or delete."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any


class AuditLog:
    """Writes JSON lines to stderr or a file; `reopen()` (on SIGUSR1) follows log rotation.

    Callers pass only fields that are safe to keep: never a password, token or header.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stream: IO[str] = self._open()

    def _open(self) -> IO[str]:
        if self._path is None:
            return sys.stderr
        self._path.parent.mkdir(parents=True, exist_ok=True)
        return self._path.open("a", encoding="utf-8", buffering=1)

    def reopen(self) -> None:
        if self._path is None:
            return
        with self._lock:
            old, self._stream = self._stream, self._open()
            old.close()

    def write(self, event: str, **fields: Any) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = json.dumps({"time": now, "event": event, **fields}, separators=(",", ":"),
                          default=str)
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
