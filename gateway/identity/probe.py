"""`check-config --probe`: ask the configured directory what the config takes for granted.

The search account binds at every URL, user_base and group_base exist, and each name that
`user:` principals and team members give with no local account is found (as the same name, and
one a login would not refuse). A URL that does not answer, refuses the search account or would
carry the password in clear text, a missing base or an unreadable or empty bind password file is
a problem; a name that is not found, or not usable, is a warning (it may come from single
sign-on, or be created later). The bind password is read as the gateway reads it, never printed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from gateway.config.htpasswd import is_account_name
from gateway.config.identity_checks import taken_names
from gateway.config.identity_schema import DirectorySettings
from gateway.config.load import LoadedConfig
from gateway.config.references import external_names
from gateway.identity.directory import client_settings
from gateway.identity.ldap_client import DirectoryClient, DirectoryUnavailable

Level = Literal["ok", "warning", "problem"]


@dataclass(frozen=True)
class Finding:
    level: Level
    text: str

    def __str__(self) -> str:
        return f"probe: {self.text}" if self.level == "ok" else f"{self.level}: probe: {self.text}"


def probe_directory(loaded: LoadedConfig) -> list[Finding]:
    """One finding per URL, base and looked-up name (or why nothing could be probed)."""
    directory = loaded.settings.directory
    if directory is None:
        return [Finding("ok", "no `directory` configured: nothing to probe")]
    # The URLs and the password file were checked when the config loaded (identity_checks).
    try:
        password = directory.bind_password_file.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:  # removed since: say so, never a traceback
        return [Finding("problem", f"directory.bind_password_file: cannot read it now "
                                   f"({type(exc).__name__})")]
    client = DirectoryClient(client_settings(directory, password))
    return asyncio.run(_probe(client, directory, loaded))


async def _probe(client: DirectoryClient, directory: DirectorySettings,
                 loaded: LoadedConfig) -> list[Finding]:
    try:
        findings, reached = _server_findings(directory, await client.probe())
        names = external_names(loaded.raw, loaded.htpasswd_users)
        if names and not reached:
            findings.append(Finding("warning", f"{_count(len(names))} with no local account not "
                                               "looked up: no directory URL answered"))
        for name, places in names.items() if reached else ():
            findings.append(await _name_finding(client, loaded, name, places))
        return findings
    finally:
        await client.close()


def _server_findings(directory: DirectorySettings,
                     problems: list[str]) -> tuple[list[Finding], bool]:
    """DirectoryClient.probe lists only what is wrong, each line starting with what it is about;
    also whether any URL bound the search account."""
    findings: list[Finding] = []
    for url in directory.url:
        wrong = [p for p in problems if p.startswith(url + ": ")]
        findings.extend(Finding("problem", p) for p in wrong)
        if not wrong:
            findings.append(Finding("ok", f"{url}: the search account {directory.bind_dn} binds"))
    reached = any(f.level == "ok" for f in findings)
    for label, base in (("user_base", directory.user_base), ("group_base", directory.group_base)):
        subject = f"{label} {base}"
        wrong = [p for p in problems if p.startswith(subject + ": ")]
        if wrong:
            findings.extend(Finding("problem", p) for p in wrong)
        elif reached:
            findings.append(Finding("ok", f"{subject}: exists"))
        else:
            findings.append(Finding("warning", f"{subject}: not checked: no directory URL answered"))
    return findings, reached


async def _name_finding(client: DirectoryClient, loaded: LoadedConfig, name: str,
                        places: list[str]) -> Finding:
    where = f"{name!r} ({', '.join(places)})"
    try:
        user = await client.find_user(name)
    except DirectoryUnavailable as exc:
        return Finding("problem", f"{where}: not looked up: {exc}")
    if user is None:
        return Finding("warning", f"{where}: not in the directory (no single entry under "
                                  "user_base matches user_filter and this name)")
    if (user.name.casefold() in taken_names(loaded.settings, loaded.htpasswd_users)
            or not is_account_name(user.name)):
        return Finding("warning", f"{where}: found as {user.name!r} ({user.dn}), which a login "
                                  "refuses: not a valid account name, or a local account's or "
                                  "federation entry's name case-insensitively")
    if user.name != name:
        return Finding("warning", f"{where}: found as {user.name!r} ({user.dn}): rules and "
                                  f"teams must name it {user.name!r}, as the directory spells it")
    return Finding("ok", f"{where}: found ({user.dn})")


def _count(n: int) -> str:
    return "1 name" if n == 1 else f"{n} names"
