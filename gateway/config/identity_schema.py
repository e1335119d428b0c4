"""Config sections for identities beyond the file: directory (LDAP/AD), SSO and federation."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

DEFAULT_CLI_TOKEN_TTL = 7 * 86400
MAX_CLI_TOKEN_TTL = 30 * 86400


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("expected a time with a zone, e.g. 2027-06-30T00:00:00Z")
    return value


AwareTime = Annotated[datetime, AfterValidator(_aware)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DirectorySettings(_Frozen):
    url: tuple[str, ...] = Field(min_length=1)
    start_tls: bool = False
    ca_file: Path | None = None
    bind_dn: str = Field(min_length=1)
    bind_password_file: Path
    user_base: str = Field(min_length=1)
    username_attribute: str = Field(default="uid", pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    user_filter: str = "(objectClass=person)"
    group_base: str = Field(min_length=1)
    group_filter: str = "(member={dn})"
    group_name_attribute: str = Field(default="cn", pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    admin_groups: tuple[str, ...] = ()
    timeout: float = Field(default=5.0, gt=0, le=60)
    cache_ttl: int = Field(default=300, ge=0, le=86400)

    @field_validator("url", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _ldap_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not url.startswith(("ldap://", "ldaps://")):
                raise ValueError("expected ldap:// or ldaps:// URLs")
        return value


class SsoSettings(_Frozen):
    issuer: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret_file: Path
    scopes: tuple[str, ...] = ("openid", "profile", "email", "groups")
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    admin_groups: tuple[str, ...] = ()
    ca_file: Path | None = None
    cli_token_ttl: int = Field(default=DEFAULT_CLI_TOKEN_TTL, ge=60, le=MAX_CLI_TOKEN_TTL)
    not_before: dict[str, AwareTime] = {}


class FederationEntry(_Frozen):
    name: str = Field(min_length=1)
    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    claims: dict[str, str] = {}
    ca_file: Path | None = None
