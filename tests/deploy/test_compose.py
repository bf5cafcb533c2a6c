"""deploy/compose.yaml, read statically: the services the issue asks for, real verbs and
settings, and every file it mounts present."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.support import DEPLOY, check_command, unknown_settings

TEXT = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def ours() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in SERVICES.items() if s.get("image", "").startswith("propdev")}


def test_ours_run_real_run_py_verbs_with_real_settings() -> None:
    assert set(ours()) >= {"seed", "partner-allow", "node-1", "node-2", "partner-sim"}
    for name, service in ours().items():
        check_command(service["command"], f"compose service {name}")
        assert "entrypoint" not in service, f"{name}: the image's ENTRYPOINT is run.py"
        assert service["read_only"] is True, name
        assert not unknown_settings(" ".join(service.get("environment", {}))), name
    assert not unknown_settings(TEXT)


def test_two_nodes_serve_behind_the_load_balancer() -> None:
    nodes = [n for n, s in ours().items() if s["command"] == ["serve"]]
    assert len(nodes) >= 2
    haproxy = (DEPLOY / "haproxy" / "haproxy.cfg").read_text(encoding="utf-8")
    for node in nodes:
        assert f"server {node} {node}:8443" in haproxy
        env = SERVICES[node]["environment"]
        assert env["PROPDEV_PUBLIC_URL"].startswith("https://propdev.localhost:")
        assert env["PROPDEV_DATABASE_URL"].startswith("postgresql://")
        assert env["PROPDEV_REDIS_URL"].startswith("redis://redis-master:")
        assert env["PROPDEV_OTLP_ENDPOINT"] == "http://otel-collector:4318"
        assert env["PROPDEV_PARTNER_URL"] == "https://partner-sim:9443"
        assert SERVICES[node]["logging"]["driver"] == "fluentd"
    assert "uri /readyz" in haproxy and "verify required" in haproxy
    lb = SERVICES["lb"]["networks"]["propdev"]
    assert "propdev.localhost" in lb["aliases"]
    assert lb["ipv4_address"] + "/32" in SERVICES["node-1"]["environment"][
        "PROPDEV_CONNECTIONS_EXEMPT"
    ].split(",")


def test_the_rest_of_the_cluster_is_there() -> None:
    images = {name: service.get("image", "") for name, service in SERVICES.items()}
    expected = {
        "postgres": "postgres:",
        "redis-master": "redis:",
        "redis-replica": "redis:",
        "sentinel-1": "redis:",
        "sentinel-2": "redis:",
        "sentinel-3": "redis:",
        "lb": "haproxy:",
        "prometheus": "prom/prometheus:",
        "alertmanager": "prom/alertmanager:",
        "grafana": "grafana/grafana:",
        "otel-collector": "otel/opentelemetry-collector",
        "loki": "grafana/loki:",
        "fluent-bit": "fluent/fluent-bit:",
    }
    for name, image in expected.items():
        assert images[name].startswith(image), name
    assert SERVICES["redis-replica"]["command"][-2:] == ["redis-master", "6379"]
    sentinel = (DEPLOY / "redis" / "sentinel.conf").read_text(encoding="utf-8")
    assert "sentinel monitor propdev redis-master 6379 2" in sentinel
    prometheus_ip = SERVICES["prometheus"]["networks"]["propdev"]["ipv4_address"]
    assert prometheus_ip + "/32" in SERVICES["node-1"]["environment"]["PROPDEV_METRICS_ALLOW"]


def test_the_one_shots_finish_before_the_nodes_start() -> None:
    assert SERVICES["partner-allow"]["depends_on"]["seed"]["condition"] == (
        "service_completed_successfully"
    )
    for node in ("node-1", "node-2", "partner-sim"):
        assert SERVICES[node]["depends_on"]["partner-allow"]["condition"] == (
            "service_completed_successfully"
        )


def test_every_mounted_file_exists_under_deploy() -> None:
    mounts = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str) and volume.startswith("./"):
                mounts.append((name, volume.split(":", 1)[0]))
    assert len(mounts) >= 8
    for name, source in mounts:
        assert (DEPLOY / source).exists(), f"{name}: {source} is missing"
    for config in ("prometheus.yml", "propdev-slo.rules.yml", "propdev-alerts.rules.yml"):
        assert f"./prometheus/{config}:" in TEXT


def test_every_config_file_parses() -> None:
    for path in [
        DEPLOY / "alertmanager" / "alertmanager.yml",
        DEPLOY / "otel" / "collector.yaml",
        *sorted((DEPLOY / "grafana" / "provisioning").rglob("*.yaml")),
    ]:
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), path
    collector = yaml.safe_load((DEPLOY / "otel" / "collector.yaml").read_text(encoding="utf-8"))
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert collector["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
    fluent = (DEPLOY / "fluent-bit" / "propdev.conf").read_text(encoding="utf-8")
    assert "Name   forward" in fluent and "Name        loki" in fluent
