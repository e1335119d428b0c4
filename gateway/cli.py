"""The command line: serve, check-config, hash-password, explain. Nothing happens on import."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import bcrypt

from gateway.accounts import build_accounts
from gateway.authz import Policy, decide
from gateway.config import LoadedConfig, load_config
from gateway.names import valid_name
from gateway.problems import ConfigError

DEFAULT_CONFIG = "config/gateway.yaml"
HASH_COST = 12


def _config_path(value: str | None) -> Path:
    return Path(value or os.environ.get("REGISTRY_GATEWAY_CONFIG") or DEFAULT_CONFIG)


def _load(path: Path) -> LoadedConfig | None:
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        print(f"{path}: {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return loaded


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.server import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    path = _config_path(args.config)
    loaded = _load(path)
    if loaded is None:
        return 1
    try:
        run(loaded, path)
    except OSError as exc:
        # Typically a port in use or an unreadable TLS or key file: say so, no traceback.
        print(f"registry-gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    path = _config_path(args.config)
    loaded = _load(path)
    if loaded is None:
        return 1
    print(f"{path}: ok ({len(loaded.settings.repositories)} rules, "
          f"{len(loaded.settings.users) + len(loaded.htpasswd_users)} users, "
          f"{len(loaded.settings.service_accounts)} service accounts)")
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    secret = password.encode()
    if not secret:
        print("an empty password is not allowed", file=sys.stderr)
        return 1
    if len(secret) > 72:
        print("bcrypt uses at most 72 bytes; choose a shorter password", file=sys.stderr)
        return 1
    print(bcrypt.hashpw(secret, bcrypt.gensalt(rounds=args.cost)).decode())
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    loaded = _load(_config_path(args.config))
    if loaded is None:
        return 2
    if args.action not in ("pull", "push", "delete"):
        print("ACTION is one of pull, push, delete", file=sys.stderr)
        return 2
    if not valid_name(args.repository):
        print(f"{args.repository!r} is not a valid repository name", file=sys.stderr)
        return 2
    accounts = build_accounts(loaded.settings, loaded.htpasswd_users)
    policy = Policy.build(accounts, loaded.settings.repositories)
    subject = None if args.user == "-" else args.user
    decision = decide(policy, subject, args.repository, args.action, datetime.now(UTC))
    print(decision.explain())
    return 0 if decision.allowed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="registry-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help=f"config file (default: $REGISTRY_GATEWAY_CONFIG, "
                                        f"then {DEFAULT_CONFIG})")
    serve.set_defaults(func=cmd_serve)
    check = commands.add_parser("check-config", help="validate a config file, every problem")
    check.add_argument("--config")
    check.set_defaults(func=cmd_check_config)
    hasher = commands.add_parser("hash-password", help="bcrypt a password read from stdin")
    hasher.add_argument("--cost", type=int, default=HASH_COST, choices=range(10, 16),
                        metavar="{10..15}")
    hasher.set_defaults(func=cmd_hash_password)
    explain = commands.add_parser("explain", help="allow or deny, and which rule says so")
    explain.add_argument("--config")
    explain.add_argument("user", help="account name, or - for anonymous")
    explain.add_argument("repository")
    explain.add_argument("action", help="pull, push or delete")
    explain.set_defaults(func=cmd_explain)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
