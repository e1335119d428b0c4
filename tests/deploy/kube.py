"""Rendering deploy/kubernetes with `kubectl kustomize`, and the test material it needs.

Nothing secret is committed: `write_test_secrets` makes a fresh key, session secret and
htpasswd (alice, bob) wherever a test needs them, and `stage_deploy_tree` copies deploy/ into a
temporary directory with them in place, so the overlays that generate objects from files
render exactly as they would for an operator.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support.procs import find_program, run_command

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SECRET_KEYS = ("token.pem", "session.key", "htpasswd")  # the Secret registry-gateway's files
SECRETS_DIR = "/etc/registry-gateway/secrets"
PASSWORDS = {"alice": "alice-k8s-secret", "bob": "bob-k8s-secret"}
# kustomize v5 warns about the fields kustomize v2 (kubectl 1.20) also needs; nothing else may
# appear on stderr.
_DEPRECATION = re.compile(r"^# Warning: '(bases|patchesStrategicMerge|patchesJson6902)' is "
                          r"deprecated\. Please use '(resources|patches)' instead\..*$")

Doc = dict[str, Any]


def render(directory: Path) -> list[Doc]:
    """`kubectl kustomize DIRECTORY`, parsed; fails on any stderr but v5's deprecation notes."""
    result = run_command([find_program("kubectl"), "kustomize", str(directory)], timeout=60)
    noise = [line for line in result.stderr.splitlines()
             if line.strip() and not _DEPRECATION.match(line)]
    assert not noise, f"kubectl kustomize {directory} printed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: Iterable[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def of_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def port_of(host_port: str) -> int:
    return int(host_port.rsplit(":", 1)[1])


def allowed_sources(policy: Doc) -> list[dict[str, str]]:
    """The pod labels each ingress rule admits; only podSelector peers are accepted here."""
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sources = []
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), "a rule without `from` admits everything"
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, peer  # no namespace or ipBlock peers
            sources.append(peer["podSelector"]["matchLabels"])
    return sources


def gateway_config(docs: Iterable[Doc], configmap: str = "registry-gateway-config") -> Doc:
    config: Doc = yaml.safe_load(find(docs, "ConfigMap", configmap)["data"]["gateway.yaml"])
    return config


def secret_paths(config: Any) -> list[str]:
    """Every string in the config that names a file under the secrets mount."""
    if isinstance(config, dict):
        return [p for value in config.values() for p in secret_paths(value)]
    if isinstance(config, list):
        return [p for value in config for p in secret_paths(value)]
    return [config] if isinstance(config, str) and config.startswith(SECRETS_DIR + "/") else []


def with_local_secrets(config: Any, directory: Path) -> Any:
    """The config with every secrets-mount path moved to DIRECTORY (same file names)."""
    if isinstance(config, dict):
        return {key: with_local_secrets(value, directory) for key, value in config.items()}
    if isinstance(config, list):
        return [with_local_secrets(value, directory) for value in config]
    if isinstance(config, str) and config.startswith(SECRETS_DIR + "/"):
        return str(directory / config.removeprefix(SECRETS_DIR + "/"))
    return config


def write_test_secrets(directory: Path, *, cost: int = 4) -> None:
    """TEST material: a fresh EC P-256 key, a session secret and an htpasswd (bcrypt)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    (directory / "token.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (directory / "session.key").write_text(
        "test-only-session-secret-" + "x" * 40 + "\n")
    lines = [f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(cost)).decode()}\n"
             for user, pw in PASSWORDS.items()]
    (directory / "htpasswd").write_text("".join(lines))


def stage_deploy_tree(target: Path) -> Path:
    """A copy of deploy/ with test secrets where the overlays and compose file expect them."""
    staged = target / "deploy"
    shutil.copytree(DEPLOY, staged, ignore=shutil.ignore_patterns("token.pem", "session.key",
                                                                   "htpasswd"))
    write_test_secrets(staged / "kubernetes" / "overlays" / "podman-test" / "secrets")
    write_test_secrets(staged / "compose" / "secrets")
    return staged


def remap_ports(text: str, ports: Mapping[int, int]) -> str:
    """Replace each whole-number occurrence of a key of PORTS; every one must occur."""
    for old, new in ports.items():
        pattern = re.compile(rf"(?<![0-9]){old}(?![0-9])")
        assert pattern.search(text), f"port {old} does not occur"
        text = pattern.sub(str(new), text)
    return text
