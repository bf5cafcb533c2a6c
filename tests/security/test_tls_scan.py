"""sslyze scans the node's listener as an outside auditor would, against Mozilla's
"intermediate" profile. sslyze pins an older ``cryptography`` than ours, so it runs from its own
venv, ``.venv-sslyze``, which ``scripts/test`` (through ``scripts/sslyze-venv``) installs: this
test is never skipped for want of it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningNode, node_settings, running_node

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SSLYZE = Path(__file__).resolve().parents[2] / ".venv-sslyze" / "bin" / "sslyze"
AEAD = ("_GCM_", "_CHACHA20_POLY1305_", "_CCM")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    """A node of its own on a free loopback port (the e2e fixture)."""
    async with running_node(node_settings(tmp_path / "node")) as running:
        yield running


async def sslyze(node: RunningNode, out: Path) -> tuple[int, str, dict[str, Any]]:
    assert SSLYZE.exists(), f"{SSLYZE} is missing: scripts/sslyze-venv installs it"
    process = await asyncio.create_subprocess_exec(
        str(SSLYZE),
        "--mozilla_config=intermediate",
        f"--json_out={out}",
        "--certinfo_ca_file",
        str(node.settings.pki_dir / "ca.pem"),
        node.url.removeprefix("https://"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    stdout, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(errors="replace"), json.loads(out.read_text())


def accepted(scan: dict[str, Any], version: str) -> list[dict[str, Any]]:
    suites = scan[f"{version}_cipher_suites"]
    assert suites["status"] == "COMPLETED", suites
    return list(suites["result"]["accepted_cipher_suites"])


async def test_sslyze_finds_the_listener_compliant_with_mozilla_intermediate(
    node: RunningNode, tmp_path: Path
) -> None:
    returncode, output, report = await sslyze(node, tmp_path / "sslyze.json")
    # sslyze exits 1 when the server is not compliant with the profile it was given.
    assert returncode == 0, output
    assert "OK - Compliant." in output, output
    [server] = report["server_scan_results"]
    assert server["scan_status"] == "COMPLETED", server.get("connectivity_error_trace")
    scan = server["scan_result"]

    # Only TLS 1.2 and 1.3.
    for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert accepted(scan, old) == [], old
    tls12, tls13 = accepted(scan, "tls_1_2"), accepted(scan, "tls_1_3")
    assert tls12 and tls13

    # Every TLS 1.2 suite: ECDHE key exchange and an AEAD cipher; never anonymous.
    for suite in tls12:
        name = suite["cipher_suite"]["name"]
        assert name.startswith("TLS_ECDHE_"), name
        assert any(mode in name for mode in AEAD), name
        assert not suite["cipher_suite"]["is_anonymous"], name
        assert suite["ephemeral_key"]["type_name"] == "ECDH", name
    for suite in tls13:  # TLS 1.3 has only AEAD suites; check it is not a null one
        assert any(mode in suite["cipher_suite"]["name"] for mode in AEAD), suite

    # No compression, no insecure renegotiation, downgrade protection.
    assert scan["tls_compression"]["result"]["supports_compression"] is False
    renegotiation = scan["session_renegotiation"]["result"]
    assert renegotiation["supports_secure_renegotiation"] is True
    assert renegotiation["is_vulnerable_to_client_renegotiation_dos"] is False
    assert scan["tls_fallback_scsv"]["result"]["supports_fallback_scsv"] is True
    assert scan["heartbleed"]["result"]["is_vulnerable_to_heartbleed"] is False

    # The certificate chain is valid against the project CA, sent in order.
    [deployment] = scan["certificate_info"]["result"]["certificate_deployments"]
    assert deployment["received_chain_has_valid_order"] is True
    ours = [
        result
        for result in deployment["path_validation_results"]
        if result["trust_store"]["path"] == str(node.settings.pki_dir / "ca.pem")
    ]
    assert len(ours) == 1, deployment["path_validation_results"]
    assert ours[0]["was_validation_successful"] is True, ours[0]["validation_error"]
    assert deployment["verified_chain_has_sha1_signature"] is False
