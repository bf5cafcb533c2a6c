"""Prometheus rules and Grafana dashboards: promtool accepts them, every alert has its runbook,
and every metric they name is one a running node exports (scraped from a node of a cluster:
PostgreSQL and Redis, so the cluster's own families are there too)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.support import DEPLOY, ROOT
from tests.e2e.conftest import node_settings, running_node
from tests.support.postgres import fresh_database

RULES = sorted((DEPLOY / "prometheus").glob("*.rules.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RUNBOOKS = ROOT / "docs" / "runbooks"
REDIS_URL = "redis://127.0.0.1:6379/0"
METRIC = re.compile(r"\b(propdev_[a-z0-9_:]+)")
# Series Prometheus makes itself: scrape health and the alerts' state.
SYNTHETIC = {"up", "ALERTS"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "untyped": ("",),
    "unknown": ("",),
    "info": ("_info",),
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: scripts/system-deps installs Debian's prometheus package")
    return found


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]


def dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (f"{path.name}: {panel['title']}", target["expr"])
        for path in DASHBOARDS
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]
        for target in panel["targets"]
    ]


def test_promtool_accepts_every_rules_file_and_the_prometheus_configuration() -> None:
    tool = promtool()
    assert {p.name for p in RULES} == {"propdev-slo.rules.yml", "propdev-alerts.rules.yml"}
    for path in RULES:
        done = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    config = DEPLOY / "prometheus" / "prometheus.yml"
    done = subprocess.run(
        [tool, "check", "config", "--syntax-only", str(config)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    loaded = yaml.safe_load(config.read_text(encoding="utf-8"))["rule_files"]
    assert sorted(Path(f).name for f in loaded) == sorted(p.name for p in RULES)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 25
    spec = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, (_, e) in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    done = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboards_are_provisioned_with_the_provisioned_datasource() -> None:
    titles = {json.loads(p.read_text(encoding="utf-8"))["title"] for p in DASHBOARDS}
    for topic in ("Door opens", "Partners", "Cluster", "WebSockets and push", "SLO burn"):
        assert f"propdev / {topic}" in titles
    uids = [json.loads(p.read_text(encoding="utf-8"))["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    sources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "propdev.yaml").read_text()
    )
    prometheus_uid = next(d["uid"] for d in sources["datasources"] if d["type"] == "prometheus")
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            assert panel["datasource"]["uid"] == prometheus_uid, (path.name, panel["title"])


def test_every_alert_has_its_runbook_with_the_three_sections() -> None:
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    for name in (
        "PropdevPartnerCircuitOpen",
        "PropdevNodeDown",
        "PropdevAuditCheckpointLate",
        "PropdevCertificateExpiring",
        "PropdevBackupLate",
        "PropdevSLOFastBurn",
    ):
        assert name in alerts
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    for name, rule in alerts.items():
        page = RUNBOOKS / f"{name}.md"
        assert page.is_file(), f"no runbook for {name}: {page}"
        text = page.read_text(encoding="utf-8")
        assert text.startswith(f"# {name}\n")
        for section in ("## What it means", "## How to confirm", "## What to do"):
            assert section in text, (name, section)
        assert f"({name}.md)" in index
        url = rule.get("annotations", {}).get("runbook_url")
        assert url in (None, f"docs/runbooks/{name}.md"), (name, url)


def named_metrics() -> dict[str, set[str]]:
    """Every metric name in a rule or dashboard, with where it is used."""
    found: dict[str, set[str]] = {}
    sources = [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for r in rules()]
    for where, expr in [*sources, *dashboard_exprs()]:
        for name in METRIC.findall(expr):
            found.setdefault(name, set()).add(where)
        for name in re.findall(r"\b([A-Za-z_]+)\{", expr):
            if not name.startswith("propdev_"):
                assert name in SYNTHETIC, f"{where}: {name} is neither ours nor Prometheus'"
    return found


def exported_series(text: str) -> set[str]:
    """The sample names a /metrics page declares, each family's type suffixes applied."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES[family.type]:
            names.add(family.name + suffix)
    return names


async def test_every_metric_in_a_rule_or_dashboard_is_exported_by_a_running_node(
    tmp_path: Path,
) -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    with fresh_database() as database_url:
        settings = node_settings(
            tmp_path,
            PROPDEV_DATABASE_URL=database_url,
            PROPDEV_REDIS_URL=REDIS_URL,
            PROPDEV_REDIS_PREFIX=f"ops-{uuid.uuid4().hex[:8]}",
        )
        async with running_node(settings) as node:
            async with node.http.get(f"{node.url}/metrics") as response:
                assert response.status == 200
                exported = exported_series(await response.text())
    assert "propdev_cluster_members" in exported  # a cluster node: its own families too
    missing = {
        name: sorted(where)
        for name, where in named_metrics().items()
        if name not in exported and name not in recorded
    }
    assert not missing, f"named but not exported by a node: {missing}"
    assert not {n for n in named_metrics() if ":" in n} - recorded


def test_the_exported_names_understand_histogram_and_counter_suffixes() -> None:
    page = (
        "# TYPE propdev_x_seconds histogram\n"
        'propdev_x_seconds_bucket{le="+Inf"} 1\n'
        "propdev_x_seconds_sum 1\npropdev_x_seconds_count 1\n"
        "# TYPE propdev_y counter\npropdev_y_total 2\n"
        "# TYPE propdev_z gauge\npropdev_z 3\n"
    )
    names = exported_series(page)
    assert {"propdev_x_seconds_bucket", "propdev_y_total", "propdev_z"} <= names
    assert "propdev_x_seconds" not in names and "propdev_y" not in names
