"""The generated Prometheus rules: in sync with the code, valid, and alerting as designed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from propdev.observability import DEFAULT_OBJECTIVES, RULES_FILE, render_rules, write_rules
from propdev.observability.rules import rules_command

ROOT = Path(__file__).resolve().parents[3]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed here (Debian package prometheus)")
    return found


def test_the_committed_rules_are_what_the_objectives_generate() -> None:
    committed = (ROOT / "deploy" / "prometheus" / RULES_FILE).read_text(encoding="utf-8")
    assert committed == render_rules(DEFAULT_OBJECTIVES), "run: python run.py slo-rules"


def test_every_objective_has_its_recordings_and_three_burn_rate_alerts() -> None:
    text = render_rules(DEFAULT_OBJECTIVES)
    for objective in DEFAULT_OBJECTIVES:
        assert text.count(f'slo: "{objective.name}"') == 6 + 1 + 3
    for alert in ("PropdevSLOFastBurn", "PropdevSLOSlowBurn", "PropdevSLOSteadyBurn"):
        assert text.count(f"alert: {alert}\n") == len(DEFAULT_OBJECTIVES)
    assert 'le="2.0"' in text  # the door-open latency threshold, as the client writes it


def test_the_command_writes_the_file_and_refuses_a_bad_configuration(tmp_path: Path) -> None:
    assert rules_command(None, tmp_path / "out") == 0
    assert (tmp_path / "out" / RULES_FILE).read_text() == render_rules(DEFAULT_OBJECTIVES)
    bad = tmp_path / "slo.toml"
    bad.write_text("[door_opens_availability]\nobjective = 2\n")
    assert rules_command(bad, tmp_path / "other") == 2
    assert not (tmp_path / "other").exists()


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    tool = promtool()
    path = write_rules(DEFAULT_OBJECTIVES, tmp_path)
    checked = subprocess.run(
        [tool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 60 rules found" in checked.stdout


SPEC = Path(__file__).with_name("promtool_slo_test.yml")


def test_a_burning_door_open_budget_pages_and_other_routes_do_not(tmp_path: Path) -> None:
    tool = promtool()
    write_rules(DEFAULT_OBJECTIVES, tmp_path)
    spec = tmp_path / "test.yml"
    spec.write_text(SPEC.read_text())
    tested = subprocess.run(
        [tool, "test", "rules", spec.name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
