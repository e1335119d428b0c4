"""A real OpenID provider (the npm package ``oidc-provider``, see tests/support/oidc/) on loopback.

The provider has one confidential client, ``registry-gateway``, whose redirect URIs default to
``http://127.0.0.1/ui/sso/callback`` on any port (a "native" client: RFC 8252 loopback rule), so
one provider serves every gateway a test starts. Its login page is oidc-provider's development
form: ``login`` takes an account id (the ``sub``: :meth:`OidcProvider.login_for`), ``password``
the account's password (:meth:`OidcProvider.password_for`; a wrong one shows the form again),
the button is "Sign-in"; then a consent page with a "Continue" button.
"""

from __future__ import annotations

import html
import http.client
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

from .procs import ManagedProcess, StartupError, clean_env, find_program, start_on_free_port

FIXTURE_DIR = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "registry-gateway"
DEFAULT_REDIRECT_URIS = ("http://127.0.0.1/ui/sso/callback",)

# Account id (the `sub`) -> claims, plus the "password" the login form wants (not a claim). The
# ids differ from the usernames on purpose: the identity is iss + sub, the username claim is only
# its name. "alice" collides with a local account of tests/support/gateway.py; the two "heidi"
# subjects claim the same username; "grace" has no groups claim at all.
DEFAULT_ACCOUNTS: dict[str, dict[str, Any]] = {
    "u-1001": {"preferred_username": "erin", "name": "Erin", "email": "erin@example.org",
               "email_verified": True, "groups": ["platform", "registry-admins"],
               "password": "erin-sso-secret"},
    "u-1002": {"preferred_username": "frank", "name": "Frank", "email": "frank@example.org",
               "email_verified": True, "groups": ["dev"], "password": "frank-sso-secret"},
    "u-1003": {"preferred_username": "grace", "name": "Grace", "password": "grace-sso-secret"},
    "u-1004": {"preferred_username": "alice", "groups": ["platform"], "password": "alice-sso-secret"},
    "u-1005": {"preferred_username": "heidi", "groups": ["dev"], "password": "heidi-sso-secret"},
    "u-1006": {"preferred_username": "heidi", "groups": ["platform"], "password": "heidi2-sso-secret"},
}


class OidcProvider:
    """``issuer``/``url``, ``client_id``, ``client_secret``, ``accounts``; restartable (new keys)."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        *,
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        redirect_uris: Sequence[str] = DEFAULT_REDIRECT_URIS,
        client_auth: str = "client_secret_basic",
    ) -> None:
        self.workdir = workdir
        self.port = port
        self.client_id = CLIENT_ID
        self.client_secret = secrets.token_urlsafe(24)
        self.accounts = {k: dict(v) for k, v in (accounts or DEFAULT_ACCOUNTS).items()}
        self.redirect_uris = tuple(redirect_uris)
        self.client_auth = client_auth
        workdir.mkdir(parents=True, exist_ok=True)
        accounts_file = workdir / "accounts.json"
        accounts_file.write_text(json.dumps(self.accounts))
        if not (FIXTURE_DIR / "node_modules" / "oidc-provider").is_dir():
            raise StartupError(f"oidc-provider is not installed in {FIXTURE_DIR}; run scripts/setup")
        env = clean_env(
            ("NODE_OPTIONS", "NODE_ENV"),
            OIDC_CLIENT_SECRET=self.client_secret,
            OIDC_ACCOUNTS_FILE=str(accounts_file),
            OIDC_REDIRECT_URIS=" ".join(self.redirect_uris),
            OIDC_CLIENT_AUTH=client_auth,
        )
        self.process = ManagedProcess(
            "oidc-provider",
            [find_program("node"), str(FIXTURE_DIR / "provider.mjs"), str(port)],
            log_path=workdir / "oidc-provider.log",
            env=env,
            cwd=FIXTURE_DIR,
        )

    def __repr__(self) -> str:  # no client secret
        return f"<OidcProvider {self.issuer}>"

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    url = issuer

    def login_for(self, username: str) -> str:
        """The account id to type in the login form for the (first) account named ``username``."""
        for account_id, profile in self.accounts.items():
            if profile.get("preferred_username") == username:
                return account_id
        raise KeyError(username)

    def password_for(self, username: str) -> str:
        return str(self.accounts[self.login_for(username)]["password"])

    def start(self, timeout: float = 20.0) -> None:
        """Start (or restart: fresh signing keys, sessions and grants) and wait for discovery."""
        self.process.start()
        self.process.wait_ready(self._ready, timeout=timeout)

    def stop(self) -> None:
        self.process.stop()

    def _ready(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1.0)
        try:
            conn.request("GET", "/.well-known/openid-configuration")
            return conn.getresponse().status == 200
        finally:
            conn.close()


def start_oidc_provider(
    workdir: Path,
    *,
    accounts: Mapping[str, Mapping[str, Any]] | None = None,
    redirect_uris: Sequence[str] = DEFAULT_REDIRECT_URIS,
    client_auth: str = "client_secret_basic",
    timeout: float = 20.0,
) -> OidcProvider:
    """Start oidc-provider on a free loopback port; its accounts file and log go in ``workdir``."""

    def start(port: int) -> OidcProvider:
        provider = OidcProvider(
            workdir, port, accounts=accounts, redirect_uris=redirect_uris, client_auth=client_auth
        )
        provider.start(timeout=timeout)
        return provider

    return start_on_free_port(start)


class LoginRefused(AssertionError):
    """The provider showed its login form again (a wrong login or password)."""


async def authorize(
    session: aiohttp.ClientSession,
    url: str,
    *,
    login: str,
    password: str,
    stop_at: str,
    consent: bool = True,
    max_steps: int = 12,
) -> str:
    """Play the browser: follow the provider's redirects from the authorization ``url``, fill
    its login form (and the consent form, or press Cancel when ``consent`` is false) until it
    redirects to a URL starting with ``stop_at``, and return that URL (not requested).

    ``session`` needs ``aiohttp.CookieJar(unsafe=True)``: the provider's cookies are set for
    127.0.0.1, which aiohttp's default jar refuses.
    """
    method, current, form = "GET", url, None
    logged_in = False
    for _ in range(max_steps):
        async with session.request(method, current, data=form, allow_redirects=False) as resp:
            page, location, status = await resp.text(), resp.headers.get("Location"), resp.status
        if status in (302, 303) and location:
            method, current, form = "GET", urljoin(current, location), None
            if current.startswith(stop_at):
                return current
            continue
        if status != 200:
            raise AssertionError(f"provider answered {status} at {current}: {page[:300]}")
        prompt, action, cancel = _form_of(page, current)
        if prompt == "login":
            if logged_in:
                raise LoginRefused(f"login {login!r} refused")
            logged_in, form = True, {"prompt": "login", "login": login, "password": password}
            method, current = "POST", action
        elif consent:
            method, current, form = "POST", action, {"prompt": "consent"}
        else:
            method, current, form = "GET", cancel, None
    raise AssertionError(f"no redirect to {stop_at} within {max_steps} steps")


def _form_of(page: str, url: str) -> tuple[str, str, str]:
    """(prompt, form action, Cancel link) of a dev interaction page, as absolute URLs."""
    prompt = re.search(r'name="prompt" value="(\w+)"', page)
    action = re.search(r'<form[^>]* action="([^"]+)"', page)
    cancel = re.search(r'href="([^"]+/abort)"', page)
    if prompt is None or action is None or cancel is None:
        raise AssertionError(f"no login or consent form at {url}: {page[:300]}")
    return (prompt.group(1), urljoin(url, html.unescape(action.group(1))),
            urljoin(url, html.unescape(cancel.group(1))))
