"""schemathesis, as an outsider runs it: its own command line against a live node, over every
operation of the served document (OAuth, the simulator's control API on the loopback node,
/partner/v1, /gateway/v1, /api/v1, /admin/api/v1, the ops routes), every phase (examples,
coverage, fuzzing, stateful), as anonymous, resident, operator and partner (client certificate
and a token bound to it). It must find no 5xx and nothing outside the document. What is run and
what is not (with the reasons) is in ``schemathesis.toml`` beside this file; each caller gets a
node of its own so one caller's changes do not hide another's findings."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from propdev.pki import partner_paths
from tests.e2e.conftest import RunningNode
from tests.support.partner import partner_client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
DRAIN = "/admin/api/v1/nodes/{node_id}/drain"
# Changing or deleting the demo partner changes what every later open answers (a vendor URL
# that does not answer, no partner: 502), so the role runs leave them out, and
# test_schemathesis_changes_partners_on_a_node_of_its_own fuzzes them alone.
PARTNER_CHANGES = (
    "PATCH /admin/api/v1/partners/{name}",
    "DELETE /admin/api/v1/partners/{name}",
)
ROLES = ("anonymous", "resident", "operator", "partner")


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str
    operations: set[str]
    cases: int


async def caller(node: RunningNode, role: str) -> list[str]:
    """The command-line options that make schemathesis call as ``role``."""
    if role == "anonymous":
        return []
    if role in ("resident", "operator"):
        token = await node.token_for("anna" if role == "resident" else "operator")
        return ["-H", f"Authorization: Bearer {token}"]
    async with partner_client(node.url, node.settings.data_dir, "simulator") as partner:
        token = await partner.token()
    cert = partner_paths(node.settings.pki_dir, "simulator")
    return [
        "-H",
        f"Authorization: Bearer {token}",
        "--request-cert",
        str(cert.cert),
        "--request-cert-key",
        str(cert.key),
    ]


async def schemathesis(
    node: RunningNode, options: list[str], reports: Path, document: dict[str, Any] | None = None
) -> Run:
    """``schemathesis run`` with our config: the document as ``node`` serves it (or
    ``document``), against ``node``. (Given the document's URL, schemathesis leaves
    ``GET /openapi.json`` out of a whole run; from a file it tests it like any other.)"""
    document = document or await served(node)
    (reports / "openapi.json").write_text(json.dumps(document))
    env = {**os.environ, "PROPDEV_ST_NODE_ID": node.settings.node_id, "NO_COLOR": "1"}
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "run",
        str(reports / "openapi.json"),
        "--url",
        node.url,
        "--tls-verify",
        str(node.settings.pki_dir / "ca.pem"),
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(reports / "events.ndjson"),
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    stdout, _ = await process.communicate()
    operations, cases = events(reports / "events.ndjson")
    assert process.returncode is not None
    print(stdout.decode(errors="replace")[-3000:])  # the summary, shown if the test fails
    return Run(process.returncode, stdout.decode(errors="replace"), operations, cases)


def events(path: Path) -> tuple[set[str], int]:
    """The operations tested (examples, coverage or fuzzing phase, not skipped) and how many
    cases were generated in all phases."""
    operations: set[str] = set()
    cases = 0
    for line in path.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if finished is None or finished["status"] == "skip":
            continue
        cases += len(finished["recorder"].get("cases", {}))
        if finished["phase"] != "stateful":
            operations.add(finished["recorder"]["label"])
    return operations, cases


def findings(output: str) -> str:
    """schemathesis's report from its failures on (the progress before them is noise)."""
    start = output.find("=== FAILURES ===")
    return output[start - 40 :] if start >= 0 else output


async def served(node: RunningNode) -> dict[str, Any]:
    async with node.http.get(f"{node.url}/openapi.json") as resp:
        assert resp.status == 200
        return dict(await resp.json())


async def documented(node: RunningNode) -> set[str]:
    document = await served(node)
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }


@pytest.mark.parametrize("role", ROLES)
async def test_schemathesis_finds_nothing_outside_the_document(
    node: RunningNode, role: str, tmp_path: Path
) -> None:
    every = await documented(node) - {f"POST {DRAIN}", *PARTNER_CHANGES}
    options = [*await caller(node, role), "--exclude-path", DRAIN]
    for name in PARTNER_CHANGES:
        options += ["--exclude-name", name]
    run = await schemathesis(node, options, tmp_path)
    assert run.returncode == 0, findings(run.output)
    assert every <= run.operations, sorted(every - run.operations)
    assert f"POST {DRAIN}" not in run.operations
    assert not run.operations & set(PARTNER_CHANGES)
    assert run.cases >= 10 * len(every), run.cases


async def test_schemathesis_drains_a_node_of_its_own(node: RunningNode, tmp_path: Path) -> None:
    options = [*await caller(node, "operator"), "--include-path", DRAIN]
    run = await schemathesis(node, options, tmp_path)
    assert run.returncode == 0, findings(run.output)
    assert f"POST {DRAIN}" in run.operations
    async with node.http.get(f"{node.url}/readyz") as resp:
        assert resp.status == 503
        assert (await resp.json())["draining"] is True


async def test_schemathesis_changes_partners_on_a_node_of_its_own(
    node: RunningNode, tmp_path: Path
) -> None:
    options = await caller(node, "operator")
    for name in PARTNER_CHANGES:
        options += ["--include-name", name]
    run = await schemathesis(node, options, tmp_path)
    assert run.returncode == 0, findings(run.output)
    assert set(PARTNER_CHANGES) <= run.operations, run.operations


async def test_schemathesis_reports_an_answer_the_document_does_not_list(
    node: RunningNode, tmp_path: Path
) -> None:
    """The harness can fail: the same run over a document that forgot ``GET /api/v1/me``'s 200
    exits non-zero and names the operation and the check."""
    document = await served(node)
    del document["paths"]["/api/v1/me"]["get"]["responses"]["200"]
    options = [*await caller(node, "resident"), "--include-path", "/api/v1/me"]
    run = await schemathesis(node, options, tmp_path, document)
    assert run.returncode != 0, run.output
    assert "GET /api/v1/me" in findings(run.output)
    assert "Undocumented status code" in run.output, findings(run.output)
