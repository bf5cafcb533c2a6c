"""The container image definition, read statically (no container engine here)."""

from __future__ import annotations

import json
import re

from tests.deploy.support import ROOT, check_command, unknown_settings

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def instructions(name: str) -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", joined, re.MULTILINE)]


def test_the_image_is_multi_stage_on_slim_python_3_11() -> None:
    bases = instructions("FROM")
    assert len(bases) >= 2
    assert all(base.startswith("python:3.11-slim") for base in bases)
    assert "--from=build" in DOCKERFILE


def test_it_runs_as_a_non_root_user() -> None:
    users = instructions("USER")
    assert users, "no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert int(user) >= 1000


def test_the_healthcheck_asks_healthz_over_https_with_the_project_ca() -> None:
    (check,) = instructions("HEALTHCHECK")
    assert "/healthz" in check and "https://" in check and "pki/ca.pem" in check
    assert "CERT_NONE" not in check and "-k" not in check.split()


def test_one_image_for_every_verb_and_the_node_by_default() -> None:
    (entrypoint,) = instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["python", "run.py"]
    (cmd,) = instructions("CMD")
    check_command(json.loads(cmd), "Dockerfile CMD")


def test_the_data_volume_and_settings_are_real() -> None:
    assert "/var/lib/propdev" in " ".join(instructions("VOLUME"))
    assert not unknown_settings(DOCKERFILE)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "var", "tests"} <= set(ignored)
