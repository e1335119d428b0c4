"""Checks of the `directory`, `sso` and `federation` sections: what check-config refuses and
warns about (also at start and on reload: a refused section never runs).

`workload:NAME` principals are checked with the other principals (references.py); here: every
federation entry pins claims, names are usable and unique, issuers are https (http only to a
loopback address), and a warning unless an entry pins an immutable id: a shared issuer such as
GitHub's signs tokens for every repository on GitHub, and names (`repository`, `sub`) can be
renamed and taken again, while `repository_owner_id` or GitLab's `namespace_id` cannot.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from gateway.config.htpasswd import HtpasswdEntry, is_account_name
from gateway.config.problems import Problem
from gateway.config.schema import Settings

# Claims whose values the platforms never reuse for another owner, project or repository.
IMMUTABLE_CLAIMS = frozenset({
    "repository_owner_id", "repository_id", "enterprise_id",  # GitHub Actions
    "namespace_id", "project_id", "user_id",  # GitLab CI
    "owner_id", "workspace_uuid", "repository_uuid",  # Bitbucket, CircleCI-like platforms
})


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback address (IPv6 in brackets or not)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why an issuer URL may not be used (None: https, or http to a loopback address)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "not a valid URL"
    if parts.username is not None or parts.password is not None:
        return "must not contain user info"
    if not host or parts.query or parts.fragment:
        return "expected https://HOST[/PATH] with no query or fragment"
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        return None
    return "must be https:// (http:// only to a loopback address)"


def taken_names(settings: Settings, htpasswd_users: Mapping[str, HtpasswdEntry]) -> frozenset[str]:
    """Every local account and federation entry, casefolded: a directory or SSO identity may
    hold none of these names in any case (`Carol` never becomes the local `carol`)."""
    names = (*settings.users, *settings.service_accounts, *htpasswd_users,
             *(entry.name for entry in settings.federation))
    return frozenset(name.casefold() for name in names)


def directory_url_problems(urls: tuple[str, ...], start_tls: bool) -> list[str]:
    """Why each directory URL is unusable or would carry passwords in clear text."""
    problems = [] if urls else ["no directory URL"]
    for url in urls:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            problems.append(f"{url}: not a valid URL")
            continue
        extra = (parts.path not in ("", "/") or bool(parts.query or parts.fragment)
                 or parts.username is not None)
        if parts.scheme not in ("ldap", "ldaps") or not host:
            problems.append(f"{url}: not an ldap:// or ldaps:// URL with a host")
        elif extra:
            problems.append(f"{url}: only scheme, host and port belong in the URL")
        elif parts.scheme == "ldap" and not start_tls and not is_loopback_host(host):
            problems.append(f"{url}: passwords would travel in clear text; use ldaps:// or start_tls")
    return problems


def identity_problems(settings: Settings,
                      htpasswd_users: Mapping[str, HtpasswdEntry]) -> list[Problem]:
    """Errors in `directory`, `sso` and `federation`: directory URLs that are unusable or clear
    text, an entry without claims, a bad or taken name, http."""
    local = {n.lower() for n in (*settings.users, *settings.service_accounts, *htpasswd_users)}
    problems = []
    if settings.directory is not None:
        problems += [Problem("directory.url", why) for why in directory_url_problems(
            settings.directory.url, settings.directory.start_tls)]
    if settings.sso is not None and (why := url_problem(settings.sso.issuer)):
        problems.append(Problem("sso.issuer", why))
    seen: set[str] = set()
    for index, entry in enumerate(settings.federation):
        where = f"federation[{index}]"
        if not is_account_name(entry.name):
            problems.append(Problem(f"{where}.name", "names use letters, digits, '.', '_', "
                                    "'@', '-'"))
        elif entry.name.lower() in local:
            problems.append(Problem(f"{where}.name", f"{entry.name!r} is also a local account "
                                    "(names are compared case-insensitively)"))
        elif entry.name.lower() in seen:
            problems.append(Problem(f"{where}.name", f"duplicate federation entry {entry.name!r}"))
        seen.add(entry.name.lower())
        if why := url_problem(entry.issuer):
            problems.append(Problem(f"{where}.issuer", why))
        if not entry.claims:
            problems.append(Problem(f"{where}.claims", "an entry must pin claims: its issuer "
                                    "signs tokens for everybody it serves"))
    return problems + _file_problems(settings)


def _file_problems(settings: Settings) -> list[Problem]:
    """The SSO client secret and the directory's bind password must be readable and not empty;
    every CA file must load."""
    cas = [(f"federation[{i}].ca_file", e.ca_file) for i, e in enumerate(settings.federation)]
    secrets = []
    if settings.sso is not None:
        cas.append(("sso.ca_file", settings.sso.ca_file))
        secrets.append(("sso.client_secret_file", settings.sso.client_secret_file))
    if settings.directory is not None:
        cas.append(("directory.ca_file", settings.directory.ca_file))
        secrets.append(("directory.bind_password_file", settings.directory.bind_password_file))
    problems = [p for where, path in secrets if (p := _secret_file_problem(where, path))]
    for where, path in cas:
        if path is None:
            continue
        try:
            ssl.create_default_context(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            problems.append(Problem(where, f"cannot load CA certificates from {str(path)!r}: {exc}"))
    return problems


def _secret_file_problem(where: str, path: Path) -> Problem | None:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return Problem(where, f"cannot read {str(path)!r}: {reason}")
    return None if text.strip() else Problem(where, f"{str(path)!r} is empty")


def identity_warnings(settings: Settings) -> Iterator[Problem]:
    for index, entry in enumerate(settings.federation):
        pinned = [c for c, v in entry.claims.items() if c in IMMUTABLE_CLAIMS and "*" not in v]
        if entry.claims and not pinned:
            yield Problem(f"federation[{index}].claims",
                          f"{entry.name!r} pins no immutable id (repository_owner_id, "
                          "namespace_id, ...): names can be renamed and taken again, and the "
                          "issuer signs tokens for everyone on its platform")
