"""schemathesis against the live node: generated calls to the resident and admin APIs, with
valid tokens, find no 5xx and no answer outside the document. Bounded: a few examples per
operation, no shrinking, no example database."""

from __future__ import annotations

import asyncio
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import RunningNode

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EXAMPLES = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Valid data, then invalid data (which must get a documented 4xx, never a 5xx).
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# The WebSockets are not plain HTTP calls; the rest of /api/v1 and /admin/api/v1 is fuzzed.
TARGET = re.compile(r"^/(api/v1|admin/api/v1)/(?!ws$)")


def fuzz(
    document: dict[str, Any],
    url: str,
    ca: Path,
    tokens: dict[str, str],
    target: re.Pattern[str] = TARGET,
) -> tuple[int, list[str]]:
    """Fuzz the operations whose path matches ``target``: (operations, failures)."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    calls: list[int] = []
    operations = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            if not target.match(operation.path):
                continue
            operations += 1
            who = "operator" if operation.path.startswith("/admin/") else "resident"
            auth = {"Authorization": f"Bearer {tokens[who]}"}
            for mode in MODES:
                try:
                    runner(operation, mode, session, url, str(ca), auth, calls)()
                except BaseException as exc:  # one entry per failing operation, all reported
                    if not isinstance(exc, Exception | BaseExceptionGroup):
                        raise
                    label = f"{operation.method.upper()} {operation.path} ({mode.value})"
                    failures.append(f"{label}: {exc}"[:2000])
    assert len(calls) >= operations, (operations, len(calls))
    return operations, failures


def runner(
    operation: Any,
    mode: GenerationMode,
    session: requests.Session,
    url: str,
    ca: str,
    auth: dict[str, str],
    calls: list[int],
) -> Any:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        calls.append(1)
        case.call_and_validate(
            base_url=url, session=session, headers=auth, checks=CHECKS, timeout=15, verify=ca
        )

    return run


async def test_schemathesis_finds_no_server_error_and_nothing_outside_the_schema(
    node: RunningNode,
) -> None:
    async with node.http.get(f"{node.url}/openapi.json") as resp:
        document = await resp.json()
    tokens = {
        "resident": await node.token_for("anna"),
        "operator": await node.token_for("operator"),
    }
    ca = node.settings.pki_dir / "ca.pem"
    operations, failures = await asyncio.to_thread(fuzz, document, node.url, ca, tokens)
    assert failures == [], "\n\n".join(failures)
    assert operations >= 15

    # The same run against a document that forgot /api/v1/me's 200 does fail.
    tampered = copy.deepcopy(document)
    del tampered["paths"]["/api/v1/me"]["get"]["responses"]["200"]
    me_only = re.compile(r"^/api/v1/me$")
    _, failures = await asyncio.to_thread(fuzz, tampered, node.url, ca, tokens, me_only)
    assert failures and all(f.startswith("GET /api/v1/me") for f in failures)
    assert "Undocumented status code" in failures[0]
