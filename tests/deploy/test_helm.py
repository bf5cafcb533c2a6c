"""The Helm chart without helm: values parse, templates name only defined values, and with
their actions blanked out the templates are Kubernetes objects of the kinds the issue asks for,
running real verbs with real settings."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.deploy.support import CHART, DEPLOY, check_command, settings, unknown_settings

VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
TEMPLATES = sorted((CHART / "templates").glob("*.yaml"))
ACTION = re.compile(r"\{\{-?.*?-?\}\}", re.DOTALL)
CONTROL_LINE = re.compile(r"^\s*\{\{-?\s*(if|else|end|with|range|include|toYaml|\$|/\*).*\}\}\s*$")
VALUE_REF = re.compile(r"\.Values\.([A-Za-z0-9_.]+)")


def rendered(text: str) -> list[dict[str, Any]]:
    """Drop the lines that are only actions (control flow, included blocks) and replace the
    other actions by a word: what is left is the chart's own YAML structure."""
    lines = [line for line in text.splitlines() if not CONTROL_LINE.match(line)]
    blank = ACTION.sub("X", "\n".join(lines))
    return [doc for doc in yaml.safe_load_all(blank) if doc]


def objects() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for path in TEMPLATES:
        for doc in rendered(path.read_text(encoding="utf-8")):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path.name
            found.setdefault(doc["kind"], []).append(doc)
    return found


def lookup(path: str) -> bool:
    node: Any = VALUES
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def test_chart_metadata_and_values_parse() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2" and chart["name"] == "propdev"
    assert VALUES["replicaCount"] >= 2
    assert VALUES["probes"]["readiness"]["path"] == "/readyz"
    assert VALUES["probes"]["liveness"]["path"] == "/healthz"


def test_templates_name_only_values_that_are_defined() -> None:
    refs = {
        (path.name, ref)
        for path in [*TEMPLATES, CHART / "templates" / "_helpers.tpl"]
        for ref in VALUE_REF.findall(path.read_text(encoding="utf-8"))
    }
    assert len(refs) > 20
    missing = sorted((name, ref) for name, ref in refs if not lookup(ref))
    assert not missing, f"undefined values: {missing}"


def test_the_kinds_the_issue_asks_for_are_there() -> None:
    kinds = objects()
    for kind in (
        "Deployment",
        "PodDisruptionBudget",
        "Secret",
        "ServiceMonitor",
        "NetworkPolicy",
        "PrometheusRule",
    ):
        assert kind in kinds, kind
    (policy,) = kinds["NetworkPolicy"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert len(policy["spec"]["ingress"]) == 2  # the load balancer and Prometheus; partners
    services = kinds["Service"]
    assert any("loadBalancerSourceRanges" in s["spec"] for s in services)  # partners only


def test_pods_are_probed_locked_down_and_run_real_verbs() -> None:
    kinds = objects()
    (deployment,) = kinds["Deployment"]
    (node,) = deployment["spec"]["template"]["spec"]["containers"]
    check_command(node["args"], "Deployment")
    assert node["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert node["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    helpers = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    assert "readOnlyRootFilesystem: true" in helpers and "runAsNonRoot: true" in helpers
    (job,) = kinds["Job"]
    pod = job["spec"]["template"]["spec"]
    commands = [c["args"] for c in [*pod["initContainers"], *pod["containers"]]]
    for args in commands:
        check_command(args, "setup Job")
    assert ["seed-demo"] in commands
    assert ["pki", "issue-partner", "X", "--allow-ip", "X"] in commands  # names from values


def test_settings_named_by_the_chart_exist() -> None:
    text = "".join(
        p.read_text(encoding="utf-8") for p in [*TEMPLATES, CHART / "templates" / "_helpers.tpl"]
    )
    assert "PROPDEV_MASTER_KEY" in text and "PROPDEV_PUBLIC_URL" in text
    assert not unknown_settings(text + (CHART / "values.yaml").read_text(encoding="utf-8"))


HELPERS = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")


def test_redis_is_one_url_or_the_sentinels_never_both() -> None:
    assert VALUES["redisSentinel"] == {"sentinels": [], "service": "propdev"}  # a URL by default
    assert {"PROPDEV_REDIS_SENTINELS", "PROPDEV_REDIS_SERVICE", "PROPDEV_REDIS_URL"} <= settings()
    branches = re.search(
        r"\{\{- if \.Values\.redisSentinel\.sentinels \}\}(.*?)"
        r"\{\{- else \}\}(.*?)\{\{- end \}\}",
        HELPERS,
        re.DOTALL,
    )
    assert branches is not None, "the Redis settings are not an if/else on redisSentinel"
    sentinel, url = branches.groups()
    assert "name: PROPDEV_REDIS_SENTINELS" in sentinel and "name: PROPDEV_REDIS_SERVICE" in sentinel
    assert 'join "," .Values.redisSentinel.sentinels' in sentinel
    assert "PROPDEV_REDIS_URL" not in sentinel
    assert "name: PROPDEV_REDIS_URL" in url and "key: redis-url" in url
    assert "SENTINEL" not in url
    rest = HELPERS.replace(branches.group(0), "")
    assert "PROPDEV_REDIS" not in rest  # nowhere else, so never both
    secret = (CHART / "templates" / "secret.yaml").read_text(encoding="utf-8")
    assert re.search(r"\{\{- if not \.Values\.redisSentinel\.sentinels \}\}\s*redis-url:", secret)


def test_the_prometheus_rule_ships_the_deploy_rules_when_enabled() -> None:
    assert VALUES["prometheusRule"] == {"enabled": False, "labels": {}}
    ours = sorted((DEPLOY / "prometheus").glob("*.rules.yml"))
    copies = sorted((CHART / "rules").glob("*.rules.yml"))
    assert [p.name for p in copies] == [p.name for p in ours]
    for copy, source in zip(copies, ours, strict=True):
        assert copy.read_bytes() == source.read_bytes(), (
            f"{copy} differs: cp deploy/prometheus/*.rules.yml deploy/helm/propdev/rules/"
        )
    text = (CHART / "templates" / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert text.startswith("{{- if .Values.prometheusRule.enabled }}")
    assert '.Files.Glob "rules/*.rules.yml"' in text  # the copies, each file's groups
    assert "$labels" not in text.replace("($labels, $value)", "")  # no template of theirs here
    (rule,) = objects()["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert list(rule["spec"]) == ["groups"]
    groups = [g for path in copies for g in yaml.safe_load(path.read_text("utf-8"))["groups"]]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert {"PropdevNodeDown", "PropdevBackupLate", "PropdevSLOFastBurn"} <= alerts
    assert any("record" in r for g in groups for r in g["rules"])  # the SLO recording rules


def test_the_service_monitor_labels_the_job_as_the_alerts_select_it() -> None:
    (monitor,) = objects()["ServiceMonitor"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert {"targetLabel": "job", "replacement": "propdev"} in endpoint["relabelings"]
    alerts = (CHART / "rules" / "propdev-alerts.rules.yml").read_text(encoding="utf-8")
    assert 'up{job="propdev"}' in alerts
