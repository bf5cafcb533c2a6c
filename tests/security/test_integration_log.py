"""Every call to an integration API (partner, gateway, admin) is one ``integration_request``
record: who, what, from where, outcome, latency, trace id; no secret or personal data."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from cryptography.hazmat.primitives.serialization import Encoding

from propdev.observability import configure_logging
from propdev.pki import load_cert, partner_paths
from propdev.security import certificate_thumbprint
from tests.e2e.conftest import RunningNode
from tests.support.partner import event, partner_client

Records = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_logs() -> Iterator[tuple[io.StringIO, Records]]:
    """The production JSON pipeline into a buffer; the previous set-up restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("info", node_id="test-node", stream=buffer, cache_loggers=False)

    def records() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    try:
        yield buffer, records
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


def _one(records: Records, request_id: str) -> dict[str, Any]:
    found = [
        r
        for r in records()
        if r["event"] == "integration_request" and r.get("request_id") == request_id
    ]
    assert len(found) == 1, (request_id, found)
    return found[0]


async def _get(node: RunningNode, path: str, token: str, request_id: str) -> int:
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
    async with node.http.get(node.url + path, headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_partner_gateway_and_admin_calls_are_one_record_each_without_secrets(
    node: RunningNode, json_logs: tuple[io.StringIO, Records]
) -> None:
    buffer, records = json_logs
    settings = node.settings
    operator = await node.token_for("operator")
    anna = await node.token_for("anna")
    device = node.credentials["access_points"][0]["device_id"]
    thumbprint = certificate_thumbprint(
        load_cert(partner_paths(settings.pki_dir, "simulator").cert).public_bytes(Encoding.DER)
    )

    async with partner_client(node.url, settings.data_dir, "simulator") as partner:
        partner_token = await partner.token()
        partner.http.headers["X-Request-Id"] = "it-partner-ok"
        status, _ = await partner.post([event(device, "device_online")], token=partner_token)
        assert status == 202
        partner.http.headers["X-Request-Id"] = "it-partner-no-token"
        status, _ = await partner.post([event(device, "device_online")], token=None)
        assert status == 401

    ok = _one(records, "it-partner-ok")
    assert ok["api"] == "partner" and ok["method"] == "POST"
    assert ok["route"] == "/partner/v1/events" and ok["status"] == 202
    assert ok["outcome"] == "ok" and ok["partner"] == "simulator"
    assert ok["subject"] == "simulator" and ok["cert_thumbprint"] == thumbprint
    assert ok["client_ip"] == "127.0.0.1" and ok["latency_ms"] >= 0
    assert len(ok["trace_id"]) == 32 and ok["node"] == "test-node"
    assert ok["bytes_in"] > 0 and ok["bytes_out"] > 0
    refused = _one(records, "it-partner-no-token")
    assert refused["status"] == 401 and refused["outcome"] == "rejected"
    assert refused["subject"] is None and refused["cert_thumbprint"] == thumbprint

    assert await _get(node, "/admin/api/v1/nodes", operator, "it-admin-ok") == 200
    admin = _one(records, "it-admin-ok")
    assert admin["api"] == "admin" and admin["route"] == "/admin/api/v1/nodes"
    assert admin["subject"] == node.credentials["operator"]["id"] and admin["outcome"] == "ok"
    assert admin["partner"] is None and admin["cert_thumbprint"] is None

    assert await _get(node, "/admin/api/v1/nodes", anna, "it-admin-resident") == 403
    denied = _one(records, "it-admin-resident")
    assert denied["outcome"] == "rejected" and denied["status"] == 403

    status = await _get(node, "/gateway/v1/utilities/bills", anna, "it-gateway")
    gateway = _one(records, "it-gateway")
    assert gateway["api"] == "gateway" and gateway["status"] == status
    assert gateway["route"] == "/gateway/v1/utilities/bills"
    assert gateway["subject"] == node.resident("anna")["id"]

    # A resident route is not an integration API: no such record for it.
    assert await _get(node, "/api/v1/me", anna, "it-resident") == 200
    assert not [
        r
        for r in records()
        if r["event"] == "integration_request" and r.get("request_id") == "it-resident"
    ]

    text = buffer.getvalue()
    op = node.credentials["operator"]
    secrets = [operator, anna, partner_token, op["password"], op["totp_secret"]]
    for resident in node.credentials["residents"]:
        secrets += [resident["password"], resident["full_name"], resident["phone"]]
    for secret in secrets:
        assert secret not in text
