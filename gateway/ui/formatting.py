"""Jinja filters: sizes, times and media types as people read them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

MEDIA_TYPES = {
    "application/vnd.oci.image.index.v1+json": "OCI image index",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
    "application/vnd.oci.image.manifest.v1+json": "OCI image manifest",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker image manifest",
}


def human_size(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def when(value: datetime | float | None) -> str:
    if value is None:
        return "never"
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def media_label(value: str) -> str:
    return MEDIA_TYPES.get(value, value or "unknown")


def short_digest(value: str) -> str:
    algorithm, _, hexits = value.partition(":")
    return f"{algorithm}:{hexits[:12]}" if hexits else value


FILTERS: dict[str, Callable[..., Any]] = {
    "human_size": human_size,
    "when": when,
    "media_label": media_label,
    "short_digest": short_digest,
}
