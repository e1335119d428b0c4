"""Holds the running config snapshot; swaps it atomically on SIGHUP or file change, keeps it on error."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config.load import load_config
from gateway.config.problems import ConfigError
from gateway.config.schema import Settings
from gateway.runtime.changes import describe_changes
from gateway.runtime.snapshot import Snapshot, build_snapshot

log = logging.getLogger("registry_gateway.reload")
FULL_CHECK_POLLS = 30

# Read once at start: changing these needs a restart (listeners, TLS, upstream, Redis, key).
RESTART_ONLY = ("server", "upstream")
RESTART_ONLY_FIELDS = (
    ("cache", "redis_url"), ("cache", "sentinel"), ("cache", "redis_timeout"),
    ("token", "key_file"), ("token", "service"), ("token", "issuer"),
    ("ui", "enabled"), ("ui", "session_secret_file"), ("audit", "file"),
)


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    changed: bool
    message: str
    at: float = field(default_factory=time.time)


def _keep_restart_only(running: Settings, new: Settings) -> tuple[Settings, list[str]]:
    """The new settings with restart-only values kept as they run, and what was kept."""
    kept: list[str] = []
    update: dict[str, object] = {}
    for section in RESTART_ONLY:
        if getattr(running, section) != getattr(new, section):
            kept.append(section)
            update[section] = getattr(running, section)
    sections: dict[str, dict[str, object]] = {}
    for section, name in RESTART_ONLY_FIELDS:
        old_value = getattr(getattr(running, section), name)
        if getattr(getattr(new, section), name) != old_value:
            kept.append(f"{section}.{name}")
            sections.setdefault(section, {})[name] = old_value
    for section, fields in sections.items():
        update[section] = getattr(new, section).model_copy(update=fields)
    return (new.model_copy(update=update) if update else new), kept


class ConfigHolder:
    """The current snapshot; readers take `holder.current` once per request and keep it."""

    def __init__(self, path: Path, snapshot: Snapshot) -> None:
        self.path = path
        self.current = snapshot
        self.last_result = ReloadResult(True, True, "loaded at start")
        self._file_stamp = self._stamp()
        self._file_digest = self._digest()
        self._polls = 0
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._lock = asyncio.Lock()

    def on_change(self, listener: Callable[[Snapshot], None]) -> None:
        self._listeners.append(listener)

    async def reload(self) -> ReloadResult:
        async with self._lock:
            result = await asyncio.to_thread(self._load)
            if isinstance(result, ReloadResult):
                self.last_result = result
                return result
            snapshot, kept = result
            changed = snapshot.fingerprint != self.current.fingerprint
            previous = self.current
            previous_htpasswd = previous.settings.htpasswd_file
            self.current = snapshot
            if snapshot.settings.htpasswd_file != previous_htpasswd:
                self.mark_seen()  # watch the htpasswd file it names now
            for listener in self._listeners:
                listener(snapshot)
            message = f"config {snapshot.fingerprint} loaded"
            if kept:
                message += "; needs a restart to change: " + ", ".join(kept)
                log.warning("reload kept running values for %s (restart to change)",
                            ", ".join(kept))
            self.last_result = ReloadResult(True, changed, message)
            log.info("reload: %s: %s", message, describe_changes(previous, snapshot, kept))
            return self.last_result

    def _load(self) -> tuple[Snapshot, list[str]] | ReloadResult:
        self.mark_seen()
        try:
            loaded = load_config(self.path)
        except ConfigError as exc:
            log.error("reload refused, the running config stays:\n%s", exc)
            return ReloadResult(False, False, f"{len(exc.problems)} problem(s): {exc}")
        settings, kept = _keep_restart_only(self.current.settings, loaded.settings)
        loaded = type(loaded)(settings, loaded.htpasswd_users, loaded.raw,
                              loaded.htpasswd_text, loaded.warnings)
        return build_snapshot(loaded), kept

    def mark_seen(self) -> None:
        self._file_stamp = self._stamp()
        self._file_digest = self._digest()

    def file_changed(self) -> bool:
        """Cheap when nothing changed: the content is read only when a stat() differs, and every
        FULL_CHECK_POLLS polls (a same-size rewrite within one mtime tick)."""
        stamp = self._stamp()
        self._polls += 1
        if stamp == self._file_stamp and self._polls % FULL_CHECK_POLLS:
            return False
        self._file_stamp = stamp
        return self._digest() != self._file_digest

    def _paths(self) -> tuple[Path, ...]:
        htpasswd = self.current.settings.htpasswd_file
        return (self.path,) if htpasswd is None else (self.path, htpasswd)

    def _stamp(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in self._paths():
            try:
                info = path.stat()
            except OSError:
                stamps.append((-1, -1, -1))
            else:
                stamps.append((info.st_mtime_ns, info.st_size, info.st_ino))
        return tuple(stamps)

    def _digest(self) -> str:
        """A digest of the config file and the htpasswd file it names."""
        digest = hashlib.sha256()
        for path in self._paths():
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"\0missing")
            digest.update(b"\0")
        return digest.hexdigest()


async def watch_file(holder: ConfigHolder, trigger: Callable[[], None],
                     interval: float = 1.0) -> None:
    """Ask for a reload when the files' content changes (config_watch: true)."""
    while True:
        await asyncio.sleep(interval)
        if holder.current.settings.config_watch and holder.file_changed():
            holder.mark_seen()
            trigger()
