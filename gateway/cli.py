"""registry-gateway: keep the repositories of a plain Docker registry private.

Commands: serve, check-config, hash-password, explain, reload.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import bcrypt

from gateway.config.htpasswd import DEFAULT_BCRYPT_COST
from gateway.config.load import LoadedConfig, load_config
from gateway.config.problems import ConfigError
from gateway.identity.credentials import BCRYPT_MAX_PASSWORD_BYTES
from gateway.identity.probe import Finding, probe_directory
from gateway.policy.accounts import build_accounts
from gateway.policy.actions import as_action
from gateway.policy.decide import Policy, decide
from gateway.policy.explain import explain as explain_decision
from gateway.policy.explain import explained_subject
from gateway.policy.names import valid_name

DEFAULT_CONFIG = "config/gateway.yaml"
DEFAULT_PID_FILE = ".local/gateway.pid"


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

    # The operational log on stdout; the audit trail goes to stderr or audit.file, never here.
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
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
    settings = loaded.settings
    counts = (_count(len(settings.repositories), "rule"),
              _count(len(settings.users) + len(loaded.htpasswd_users), "user"),
              _count(len(settings.service_accounts), "service account"))
    print(f"{path}: ok ({', '.join(counts)})")
    return _report_probe(path, probe_directory(loaded)) if args.probe else 0


def _report_probe(path: Path, findings: list[Finding]) -> int:
    """One line per finding: ok ones on stdout, warnings and problems on stderr (as above)."""
    for finding in findings:
        sys.stdout.flush()
        print(finding, file=sys.stdout if finding.level == "ok" else sys.stderr)
    problems = sum(1 for finding in findings if finding.level == "problem")
    if problems:
        print(f"{path}: the probe found {problems} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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
    if len(secret) > BCRYPT_MAX_PASSWORD_BYTES:
        print(f"bcrypt uses at most {BCRYPT_MAX_PASSWORD_BYTES} bytes; choose a shorter password",
              file=sys.stderr)
        return 1
    print(bcrypt.hashpw(secret, bcrypt.gensalt(rounds=args.cost)).decode())
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    loaded = _load(_config_path(args.config))
    if loaded is None:
        return 2
    action = as_action(args.action)
    if action is None:
        print("ACTION is one of pull, push, delete", file=sys.stderr)
        return 2
    if not valid_name(args.repository):
        print(f"{args.repository!r} is not a valid repository name", file=sys.stderr)
        return 2
    settings = loaded.settings
    accounts = build_accounts(settings, loaded.htpasswd_users)
    policy = Policy.build(accounts, settings.repositories, settings.teams,
                          settings.disabled_identities)
    subject = explained_subject(policy, args.user, args.groups)
    decision = decide(policy, subject, args.repository, action, datetime.now(UTC))
    print(explain_decision(policy, subject, action, decision))
    return 0 if decision.allowed else 1


def _is_gateway(pid: int) -> bool:
    """Whether `pid` runs registry-gateway (or `python -m gateway`) serve, by its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    names = [Path(a.decode(errors="replace")).name for a in argv]
    return "serve" in names and ("registry-gateway" in names or "gateway" in names)


def cmd_reload(args: argparse.Namespace) -> int:
    """SIGHUP to the running gateway, once its PID is checked to really be one."""
    pid_file = Path(args.pid_file)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        print(f"{pid_file}: no readable PID (is the gateway running?)", file=sys.stderr)
        return 1
    if pid <= 0 or not _is_gateway(pid):
        print(f"{pid_file}: PID {pid} is not a running registry-gateway (stale file?)",
              file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGHUP)
    print(f"reload sent to registry-gateway (PID {pid}); its log says what changed")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="registry-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help=f"config file (default: $REGISTRY_GATEWAY_CONFIG, "
                                        f"then {DEFAULT_CONFIG})")
    serve.set_defaults(func=cmd_serve)
    check = commands.add_parser("check-config", help="validate a config file, every problem")
    check.add_argument("--config")
    check.add_argument("--probe", action="store_true",
                       help="also bind to the directory as the search account: bases, and the "
                            "names with no local account")
    check.set_defaults(func=cmd_check_config)
    hasher = commands.add_parser("hash-password", help="bcrypt a password read from stdin")
    hasher.add_argument("--cost", type=int, default=DEFAULT_BCRYPT_COST, choices=range(10, 16),
                        metavar="{10..15}")
    hasher.set_defaults(func=cmd_hash_password)
    explain = commands.add_parser("explain", help="allow or deny, and which rule says so")
    explain.add_argument("--config")
    explain.add_argument("user", help="account name, user:NAME, workload:NAME, or - for anonymous")
    explain.add_argument("--groups", default="",
                         help="g1,g2: the directory or SSO groups of a USER that is not local")
    explain.add_argument("repository")
    explain.add_argument("action", help="pull, push or delete")
    explain.set_defaults(func=cmd_explain)
    reload = commands.add_parser("reload", help="make the running gateway reload its config")
    reload.add_argument("--pid-file",
                        default=os.environ.get("REGISTRY_GATEWAY_PID_FILE") or DEFAULT_PID_FILE,
                        help="the gateway's PID file (default: $REGISTRY_GATEWAY_PID_FILE, "
                             f"then {DEFAULT_PID_FILE})")
    reload.set_defaults(func=cmd_reload)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
