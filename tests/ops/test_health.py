"""/healthz, /readyz with the upstream stopped and back, and /metrics on its own listener."""

from __future__ import annotations

import json

from support import Upstream, free_port
from support.ops import GatewayFactory, http_answer
from support.scenario import value


def test_readyz_follows_the_upstream(ops_gateway: GatewayFactory,
                                     registry_upstream: Upstream) -> None:
    with ops_gateway() as gateway:
        status, body = http_answer(f"{gateway.url}/readyz")
        assert status == 200 and json.loads(body)["status"] == "ready"

        registry_upstream.stop()
        status, body = http_answer(f"{gateway.url}/readyz")
        assert status == 503
        assert json.loads(body) == {"status": "unavailable",
                                    "reason": "the upstream registry does not answer"}
        assert http_answer(f"{gateway.url}/healthz")[0] == 200  # alive, just not ready
        metrics = http_answer(f"{gateway.url}/metrics")[1].decode()
        assert value(metrics, "registry_gateway_upstream_up") == 0
        # A request that needs the upstream fails cleanly and is counted.
        assert http_answer(f"{gateway.url}/v2/library/x/manifests/1")[0] == 502
        metrics = http_answer(f"{gateway.url}/metrics")[1].decode()
        assert value(metrics, "registry_gateway_upstream_errors_total", kind="connect") >= 1

        registry_upstream.start()
        status, body = http_answer(f"{gateway.url}/readyz")
        assert status == 200 and json.loads(body)["status"] == "ready"
        metrics = http_answer(f"{gateway.url}/metrics")[1].decode()
        assert value(metrics, "registry_gateway_upstream_up") == 1


def test_metrics_listen_moves_metrics_off_the_main_listener(ops_gateway: GatewayFactory) -> None:
    metrics_port = free_port()
    with ops_gateway(metrics_listen=f"127.0.0.1:{metrics_port}") as gateway:
        assert http_answer(f"{gateway.url}/healthz")[0] == 200
        assert http_answer(f"{gateway.url}/metrics")[0] == 404
        status, body = http_answer(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        text = body.decode()
        # The main listener's traffic shows on the metrics listener: one registry of metrics.
        assert value(text, "registry_gateway_requests_total",
                     method="GET", route="other", status="404") == 1
        assert "registry_gateway_service_accounts_expiring" in text
        # Only /metrics lives there: no registry API, no health, no token endpoint.
        for path in ("/v2/", "/token", "/healthz"):
            assert http_answer(f"http://127.0.0.1:{metrics_port}{path}")[0] == 404


def test_metrics_on_the_main_listener_by_default(ops_gateway: GatewayFactory) -> None:
    with ops_gateway() as gateway:
        status, body = http_answer(f"{gateway.url}/metrics")
        assert status == 200
        assert b"registry_gateway_build_info" in body
