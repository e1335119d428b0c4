"""The config file's shape: frozen pydantic settings, one model per section."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from gateway.config.globs import glob_problem
from gateway.config.htpasswd import BCRYPT_HASH
from gateway.config.identity_schema import DirectorySettings, FederationEntry, SsoSettings


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return value


def split_host_port(value: str) -> tuple[str, int]:
    """A validated `host:port` (IPv6 in brackets) as (host, port)."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The value is not echoed: a URL may carry credentials.
        raise ValueError("expected an http(s) URL")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError("expected a base URL without path, query or fragment")
    return value.rstrip("/")


def _bcrypt_hash(value: SecretStr) -> SecretStr:
    if not BCRYPT_HASH.fullmatch(value.get_secret_value()):
        raise ValueError(
            "expected a bcrypt hash ($2b$...); plaintext passwords are not accepted "
            "(make one with `registry-gateway hash-password`)"
        )
    return value


HostPort = Annotated[str, AfterValidator(_host_port)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
PasswordHash = Annotated[SecretStr, AfterValidator(_bcrypt_hash)]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(Frozen):
    cert: Path
    key: Path


class LimitSettings(Frozen):
    """Server-side limits; see docs/security.md#limits."""

    max_connections: int = Field(default=1024, ge=1)
    header_timeout: float = Field(default=10.0, gt=0)
    idle_timeout: float = Field(default=75.0, gt=0)
    max_line_size: int = Field(default=8190, ge=1024)
    max_field_size: int = Field(default=8190, ge=1024)
    max_headers: int = Field(default=100, ge=16)


class ServerSettings(Frozen):
    listen: HostPort = "0.0.0.0:5050"
    public_url: HttpUrl
    tls: TlsSettings | None = None
    metrics_listen: HostPort | None = None
    trusted_proxies: tuple[Network, ...] = ()
    allow_insecure_basic: bool = False
    limits: LimitSettings = LimitSettings()


class UpstreamSettings(Frozen):
    url: HttpUrl
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=300.0, gt=0)
    # A registry on TLS with a private CA, mTLS, and its own htpasswd: read at start only.
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str | None = Field(default=None, min_length=1)
    password_file: Path | None = None

    @model_validator(mode="after")
    def _pairs(self) -> UpstreamSettings:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("set client_cert and client_key together")
        if (self.username is None) != (self.password_file is None):
            raise ValueError("set username and password_file together")
        if ":" in (self.username or ""):
            raise ValueError("username may not contain ':'")
        return self


class TokenSettings(Frozen):
    service: str = Field(min_length=1)
    issuer: str = Field(default="registry-gateway", min_length=1)
    ttl: int = Field(default=300, ge=60, le=86400)
    refresh_ttl: int = Field(default=2592000, ge=60)
    key_file: Path | None = None


class SentinelSettings(Frozen):
    hosts: tuple[HostPort, ...] = Field(min_length=1)
    service_name: str = Field(min_length=1)
    db: int = Field(default=0, ge=0)


class ContentCacheSettings(Frozen):
    """Manifests and blobs of at most 64 KiB by (repository, digest), and tag -> digest;
    see docs/performance.md#the-content-cache. Reloadable."""

    enabled: bool = True
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)  # in process, per replica
    ttl: int = Field(default=300, ge=1, le=86400)  # content removed behind the gateway's back
    tag_ttl: int = Field(default=5, ge=0, le=3600)  # a tag moved on the upstream; 0: never cached
    redis: bool = True  # bodies also shared in Redis (when configured)


class CacheSettings(Frozen):
    redis_url: str | None = Field(default=None, repr=False)  # may hold a password
    sentinel: SentinelSettings | None = None
    ttl: int = Field(default=60, ge=1)
    max_entries: int = Field(default=100_000, ge=100)
    redis_timeout: float = Field(default=0.05, gt=0, le=5)
    manifests: ContentCacheSettings = ContentCacheSettings()

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _one_redis(self) -> CacheSettings:
        if self.redis_url is not None and self.sentinel is not None:
            raise ValueError("set redis_url or sentinel, not both")
        return self


class LockoutSettings(Frozen):
    max_failures: int = Field(default=10, ge=1)
    window: int = Field(default=300, ge=1)
    cooldown: int = Field(default=300, ge=1)
    max_cooldown: int = Field(default=3600, ge=1)


class AuthSettings(Frozen):
    lockout: LockoutSettings = LockoutSettings()
    credential_cache_ttl: int = Field(default=60, ge=0, le=3600)


class AuditSettings(Frozen):
    file: Path | None = None


class UiSettings(Frozen):
    enabled: bool = True
    session_secret_file: Path | None = None
    session_ttl: int = Field(default=28800, ge=60)


class UserSpec(Frozen):
    password_hash: PasswordHash
    admin: bool = False
    disabled: bool = False


class ServiceAccountSpec(Frozen):
    password_hash: PasswordHash
    expires: datetime | None = None
    disabled: bool = False

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expected a time with a zone, e.g. 2027-06-30T00:00:00Z")
        return value


class TeamSpec(Frozen):
    members: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # directory or SSO group names whose members are in the team


class RuleSpec(Frozen):
    match: str
    visibility: Literal["private", "public"] = "private"
    pull: tuple[str, ...] = ()
    push: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    comment: str = ""

    @field_validator("match")
    @classmethod
    def _glob(cls, value: str) -> str:
        problem = glob_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class Settings(Frozen):
    server: ServerSettings
    upstream: UpstreamSettings
    token: TokenSettings
    cache: CacheSettings = CacheSettings()
    config_watch: bool = False
    auth: AuthSettings = AuthSettings()
    audit: AuditSettings = AuditSettings()
    ui: UiSettings = UiSettings()
    htpasswd_file: Path | None = None
    users: dict[str, UserSpec] = {}
    service_accounts: dict[str, ServiceAccountSpec] = {}
    teams: dict[str, TeamSpec] = {}
    repositories: tuple[RuleSpec, ...] = ()


    directory: DirectorySettings | None = None
    sso: SsoSettings | None = None
    federation: tuple[FederationEntry, ...] = ()
    disabled_identities: tuple[str, ...] = ()
