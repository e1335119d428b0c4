"""Load and validate the YAML config into frozen settings, reporting every problem at once."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

try:  # libyaml: a 10,000-rule file loads in seconds instead of tens of seconds
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

from gateway.htpasswd import BCRYPT_HASH, HtpasswdEntry, parse_htpasswd
from gateway.problems import ConfigError, Problem, format_location
from gateway.references import reference_problems, weak_hash_warnings


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return value


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


class CacheSettings(Frozen):
    redis_url: str | None = Field(default=None, repr=False)  # may hold a password
    sentinel: SentinelSettings | None = None
    ttl: int = Field(default=60, ge=1)
    max_entries: int = Field(default=100_000, ge=100)
    redis_timeout: float = Field(default=0.05, gt=0, le=5)

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
        from gateway.globs import glob_problem

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


@dataclass(frozen=True)
class LoadedConfig:
    """Validated settings plus what came with them: htpasswd users and warnings."""

    settings: Settings
    htpasswd_users: Mapping[str, HtpasswdEntry]
    raw: Mapping[str, Any] = field(repr=False)  # holds the password hashes
    htpasswd_text: str = field(repr=False)
    warnings: tuple[Problem, ...]


class _UniqueKeyLoader(_SafeLoader):
    """A SafeLoader that records duplicate mapping keys instead of silently keeping the last."""

    duplicates: list[Problem]


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            loader.duplicates.append(
                Problem(f"line {mark.line + 1}", f"duplicate key {key!r}")
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def parse_yaml(text: str) -> tuple[Any, list[Problem]]:
    loader = _UniqueKeyLoader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        return None, [Problem("", f"not valid YAML: {exc}")]
    finally:
        loader.dispose()
    return data, loader.duplicates


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [p for p in error["loc"] if not (isinstance(p, str) and "[" in p)]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(Problem(format_location(loc), message))
    return problems


def load_config(path: Path) -> LoadedConfig:
    """Read, parse and validate `path`; raise ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), f"cannot read: {exc}")]) from exc
    return load_config_text(text, base_dir=path.parent)


def load_config_text(text: str, base_dir: Path) -> LoadedConfig:
    data, problems = parse_yaml(text)
    if data is None and not problems:
        problems.append(Problem("", "the file is empty"))
    if problems and data is None:
        raise ConfigError(problems)
    if not isinstance(data, dict):
        raise ConfigError([*problems, Problem("", "expected a mapping at the top level")])

    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))

    htpasswd_users: dict[str, HtpasswdEntry] = {}
    htpasswd_text = ""
    htpasswd_path = data.get("htpasswd_file")
    if isinstance(htpasswd_path, str):
        resolved = Path(htpasswd_path)
        if not resolved.is_absolute():
            resolved = base_dir / resolved
        try:
            htpasswd_text = resolved.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem("htpasswd_file", f"cannot read {str(resolved)!r}: {exc}"))
        else:
            entries, htpasswd_problems = parse_htpasswd(htpasswd_text)
            htpasswd_users = entries
            problems.extend(Problem(f"htpasswd_file:{p.location}", p.message)
                            for p in htpasswd_problems)

    problems.extend(reference_problems(data, htpasswd_users))
    if settings is not None:
        from gateway.filechecks import file_problems  # needs settings; imports the token code

        problems.extend(file_problems(settings))
    if problems or settings is None:
        raise ConfigError(problems)
    if settings.htpasswd_file is not None and not settings.htpasswd_file.is_absolute():
        settings = settings.model_copy(update={"htpasswd_file": base_dir / settings.htpasswd_file})
    return LoadedConfig(
        settings=settings,
        htpasswd_users=htpasswd_users,
        raw=data,
        htpasswd_text=htpasswd_text,
        warnings=tuple(weak_hash_warnings(_config_hashes(settings), htpasswd_users)),
    )


def _config_hashes(settings: Settings) -> dict[str, str]:
    hashes = {f"users.{name}": spec.password_hash.get_secret_value()
              for name, spec in settings.users.items()}
    hashes.update({f"service_accounts.{name}": spec.password_hash.get_secret_value()
                   for name, spec in settings.service_accounts.items()})
    return hashes
