"""deploy/kubernetes renders with the kubectl on PATH, keeps its promises, and its config checks.

Each kustomization (the base, the Sentinel overlay and the podman test overlay) is rendered
with `kubectl kustomize` from a staged copy of deploy/ (test secrets written where the test
overlay generates objects from files). The gateway config each one renders is run through
`python -m gateway check-config` with its secret files moved to test files.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.procs import run_command

from deploy.kube import (
    ROOT,
    SECRET_KEYS,
    SECRETS_DIR,
    Doc,
    allowed_sources,
    find,
    gateway_config,
    of_kind,
    pod_labels,
    port_of,
    render,
    secret_paths,
    selects,
    stage_deploy_tree,
    with_local_secrets,
    write_test_secrets,
)

PRODUCTION = ("base", "overlays/sentinel")
GATEWAY_LABELS = {"app.kubernetes.io/name": "registry-gateway",
                  "app.kubernetes.io/component": "gateway"}


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stage_deploy_tree(tmp_path_factory.mktemp("deploy")) / "kubernetes"


@pytest.fixture(scope="module")
def rendered(staged: Path) -> dict[str, list[Doc]]:
    names = (*PRODUCTION, "overlays/podman-test")
    return {name: render(staged / name) for name in names}


def _check_config(config: Doc, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    secrets = tmp_path / "secrets"
    write_test_secrets(secrets)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(with_local_secrets(config, secrets), sort_keys=False))
    return run_command([sys.executable, "-m", "gateway", "check-config", "--config", str(path)],
                       check=False, timeout=60)


def _containers(workload: Doc) -> list[Doc]:
    containers: list[Doc] = workload["spec"]["template"]["spec"]["containers"]
    return containers


@pytest.mark.parametrize("name", [*PRODUCTION, "overlays/podman-test"])
def test_rendered_config_passes_check_config(
    rendered: dict[str, list[Doc]], name: str, tmp_path: Path
) -> None:
    configmaps = [c["metadata"]["name"] for c in of_kind(rendered[name], "ConfigMap")
                  if "gateway.yaml" in c.get("data", {})]
    assert configmaps
    for configmap in configmaps:
        config = gateway_config(rendered[name], configmap)
        assert config["config_watch"] is True
        names = {p.removeprefix(SECRETS_DIR + "/") for p in secret_paths(config)}
        assert names == set(SECRET_KEYS), names  # every file the config names, from the Secret
        result = _check_config(config, tmp_path / configmap)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", PRODUCTION)
def test_gateway_deployment(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    deployment = find(docs, "Deployment", "registry-gateway")
    config = gateway_config(docs)
    listen, metrics = port_of(config["server"]["listen"]), port_of(config["server"]["metrics_listen"])
    assert deployment["spec"]["replicas"] >= 2
    assert pod_labels(deployment) == GATEWAY_LABELS
    (container,) = _containers(deployment)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": listen}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": listen}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(metrics) == "9102"
    assert {"name": "metrics", "containerPort": metrics, "protocol": "TCP"} in container["ports"]
    assert config["server"]["metrics_listen"].startswith("0.0.0.0:")  # scrapable from outside


@pytest.mark.parametrize("name", PRODUCTION)
def test_config_and_secrets_are_mounted_as_directories(
    rendered: dict[str, list[Doc]], name: str
) -> None:
    docs = rendered[name]
    deployment = find(docs, "Deployment", "registry-gateway")
    (container,) = _containers(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    config_mount = mounts[str(config_path.parent)]
    assert "subPath" not in config_mount  # a subPath mount never sees the ..data swap
    assert volumes[config_mount["name"]]["configMap"]["name"] == "registry-gateway-config"
    assert config_path.name == "gateway.yaml"
    secret_mount = mounts[SECRETS_DIR]
    assert "subPath" not in secret_mount and secret_mount["readOnly"] is True
    assert volumes[secret_mount["name"]]["secret"]["secretName"] == "registry-gateway"
    assert {"REGISTRY_GATEWAY_CONFIG": str(config_path)} == {
        e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("name", PRODUCTION)
def test_no_secret_in_any_configmap(rendered: dict[str, list[Doc]], name: str) -> None:
    assert not of_kind(rendered[name], "Secret")  # created by the operator (docs/kubernetes.md)
    for configmap in of_kind(rendered[name], "ConfigMap"):
        for key, value in configmap["data"].items():
            assert "PRIVATE KEY" not in value, key
            assert "$2b$" not in value and "$2y$" not in value, key  # no password hashes either
    config = gateway_config(rendered[name])
    assert not config.get("users") and not config.get("service_accounts")


@pytest.mark.parametrize("name", PRODUCTION)
def test_every_workload_is_locked_down(rendered: dict[str, list[Doc]], name: str) -> None:
    workloads = of_kind(rendered[name], "Deployment") + of_kind(rendered[name], "StatefulSet")
    assert {w["metadata"]["name"] for w in workloads} >= {"registry-gateway", "registry"}
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]
            assert "limits" in container["resources"], container["name"]


@pytest.mark.parametrize("name", PRODUCTION)
def test_disruption_budget_keeps_a_gateway(rendered: dict[str, list[Doc]], name: str) -> None:
    budget = find(rendered[name], "PodDisruptionBudget", "registry-gateway")
    replicas = find(rendered[name], "Deployment", "registry-gateway")["spec"]["replicas"]
    assert selects(budget["spec"]["selector"]["matchLabels"], GATEWAY_LABELS)
    assert 1 <= budget["spec"]["minAvailable"] < replicas


@pytest.mark.parametrize("name", PRODUCTION)
def test_only_gateway_pods_reach_the_registry(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    registry = find(docs, "Deployment", "registry")
    policies = [p for p in of_kind(docs, "NetworkPolicy")
                if selects(p["spec"]["podSelector"]["matchLabels"], pod_labels(registry))]
    assert len(policies) == 1
    sources = allowed_sources(policies[0])
    assert sources and all(s == GATEWAY_LABELS for s in sources)
    workloads = of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")
    admitted = [w["metadata"]["name"] for w in workloads
                if any(selects(s, pod_labels(w)) for s in sources)]
    assert admitted == ["registry-gateway"]
    assert [p["port"] for r in policies[0]["spec"]["ingress"] for p in r["ports"]] == [5000]


@pytest.mark.parametrize("name", PRODUCTION)
def test_only_gateway_and_redis_pods_reach_redis(
    rendered: dict[str, list[Doc]], name: str
) -> None:
    docs = rendered[name]
    redis = [w for w in of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")
             if w["metadata"]["name"].startswith("redis")]
    assert len(redis) == 1
    (policy,) = [p for p in of_kind(docs, "NetworkPolicy")
                 if selects(p["spec"]["podSelector"]["matchLabels"], pod_labels(redis[0]))]
    for source in allowed_sources(policy):
        assert source in (GATEWAY_LABELS, pod_labels(redis[0]))


@pytest.mark.parametrize("name", PRODUCTION)
def test_registry(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    registry = find(docs, "Deployment", "registry")
    (container,) = _containers(registry)
    (secret,) = [e for e in container["env"] if e["name"] == "REGISTRY_HTTP_SECRET"]
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "registry-http-secret",
                                                   "key": "http-secret"}
    volumes = {v["name"]: v for v in registry["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    find(docs, "PersistentVolumeClaim", claim)
    registry_config = yaml.safe_load(find(docs, "ConfigMap", "registry-config")["data"]
                                     ["config.yml"])
    assert registry_config["storage"]["delete"]["enabled"] is True
    assert "auth" not in registry_config
    assert registry["spec"]["template"]["spec"]["enableServiceLinks"] is False
    upstream = gateway_config(docs)["upstream"]["url"]
    service = find(docs, "Service", "registry")
    assert upstream == f"http://registry:{service['spec']['ports'][0]['port']}"
    assert selects(service["spec"]["selector"], pod_labels(registry))


@pytest.mark.parametrize("name", PRODUCTION)
def test_ingress_streams_and_proxies_are_trusted(
    rendered: dict[str, list[Doc]], name: str
) -> None:
    docs = rendered[name]
    ingress = find(docs, "Ingress", "registry-gateway")
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert notes[prefix + "proxy-body-size"] == "0"
    assert notes[prefix + "proxy-request-buffering"] == "off"
    assert notes[prefix + "proxy-buffering"] == "off"
    assert int(notes[prefix + "proxy-read-timeout"]) >= 600
    assert int(notes[prefix + "proxy-send-timeout"]) >= 600
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    service = find(docs, "Service", backend["name"])
    assert selects(service["spec"]["selector"], GATEWAY_LABELS)
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    server = gateway_config(docs)["server"]
    assert server["public_url"] == f"https://{rule['host']}"
    assert [ipaddress.ip_network(n) for n in server["trusted_proxies"]]
    assert "allow_insecure_basic" not in server  # https is believed from the trusted proxies


def _without(config: Doc, *keys: str) -> Doc:
    return {k: v for k, v in config.items() if k not in keys}


def test_sentinel_overlay_differs_only_in_cache(rendered: dict[str, list[Doc]]) -> None:
    base, sentinel = gateway_config(rendered["base"]), gateway_config(rendered["overlays/sentinel"])
    assert _without(base, "cache") == _without(sentinel, "cache")
    assert base["cache"]["ttl"] == sentinel["cache"]["ttl"]
    settings = sentinel["cache"]["sentinel"]
    statefulset = find(rendered["overlays/sentinel"], "StatefulSet", "redis-node")
    service, replicas = statefulset["spec"]["serviceName"], statefulset["spec"]["replicas"]
    assert settings["hosts"] == [f"redis-node-{i}.{service}:26379" for i in range(replicas)]
    find(rendered["overlays/sentinel"], "Service", service)
    scripts = find(rendered["overlays/sentinel"], "ConfigMap", "redis-node-scripts")["data"]
    assert f"sentinel monitor {settings['service_name']} " in scripts["sentinel.sh"]
    deployments = of_kind(rendered["overlays/sentinel"], "Deployment")
    assert sorted(d["metadata"]["name"] for d in deployments) == ["registry", "registry-gateway"]


def test_sentinel_scripts_are_valid_shell(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    scripts = find(rendered["overlays/sentinel"], "ConfigMap", "redis-node-scripts")["data"]
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
        result = run_command(["sh", "-n", str(tmp_path / name)], check=False)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_podman_overlay_is_two_replicas_of_the_base(rendered: dict[str, list[Doc]]) -> None:
    docs, base = rendered["overlays/podman-test"], gateway_config(rendered["base"])
    ports = set()
    for replica in ("a", "b"):
        deployment = find(docs, "Deployment", f"registry-gateway-{replica}")
        pod = deployment["spec"]["template"]["spec"]
        assert deployment["spec"]["replicas"] == 1 and pod["hostNetwork"] is True
        config = gateway_config(docs, f"registry-gateway-config-{replica}")
        policy = ("teams", "repositories", "htpasswd_file", "config_watch")
        assert {k: config[k] for k in policy} == {k: base[k] for k in policy}
        assert config["token"]["key_file"] == base["token"]["key_file"]
        assert config["server"]["listen"].startswith("127.0.0.1:")
        ports.add(port_of(config["server"]["listen"]))
        (container,) = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["port"] == port_of(config["server"]["listen"])
    assert len(ports) == 2
    configs = [gateway_config(docs, f"registry-gateway-config-{r}") for r in "ab"]
    assert configs[0]["cache"] == configs[1]["cache"]  # one Redis shared by both


def test_docs_create_the_secrets_the_manifests_use() -> None:
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    assert "kubectl -n registry create secret generic registry-gateway" in text
    for key in SECRET_KEYS:
        assert f"--from-file={key}" in text, key
    assert "create secret generic registry-http-secret" in text
    assert "--from-literal=http-secret=" in text
