"""Holds the running config snapshot; swaps it atomically on SIGHUP or file change, keeps it on error."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Settings, load_config
from gateway.problems import ConfigError
from gateway.snapshot import Snapshot, build_snapshot

log = logging.getLogger("registry_gateway.reload")

# Read once at start: changing these needs a restart (listeners, TLS, upstream, Redis, key).
RESTART_ONLY = ("server", "upstream")
RESTART_ONLY_FIELDS = (("cache", "redis_url"), ("cache", "sentinel"), ("token", "key_file"),
                       ("token", "service"), ("token", "issuer"), ("ui", "enabled"),
                       ("ui", "session_secret_file"), ("audit", "file"))


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    changed: bool
    message: str


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
        self._file_digest = self._digest()
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
            self.current = snapshot
            for listener in self._listeners:
                listener(snapshot)
            message = f"config {snapshot.fingerprint} loaded"
            if kept:
                message += "; needs a restart to change: " + ", ".join(kept)
                log.warning("reload kept running values for %s (restart to change)",
                            ", ".join(kept))
            self.last_result = ReloadResult(True, changed, message)
            log.info("%s", message)
            return self.last_result

    def _load(self) -> tuple[Snapshot, list[str]] | ReloadResult:
        self._file_digest = self._digest()
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
        self._file_digest = self._digest()

    def file_changed(self) -> bool:
        return self._digest() != self._file_digest

    def _digest(self) -> str:
        """A digest of the config file and the htpasswd file it names."""
        digest = hashlib.sha256()
        htpasswd = self.current.settings.htpasswd_file
        for path in (self.path, htpasswd):
            try:
                digest.update(path.read_bytes() if path else b"")
            except OSError:
                digest.update(b"\0missing")
        return digest.hexdigest()


async def watch_file(holder: ConfigHolder, trigger: Callable[[], None],
                     interval: float = 1.0) -> None:
    """Ask for a reload when the files' content changes (config_watch: true)."""
    while True:
        await asyncio.sleep(interval)
        if holder.current.settings.config_watch and holder.file_changed():
            holder.mark_seen()
            trigger()
