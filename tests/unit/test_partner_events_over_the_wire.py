"""Tests beyond ``tests/unit`` give device events to the node as a partner does: over
``POST /partner/v1/events`` (or gRPC ``StreamEvents``), never straight into a device actor
(``DeviceEvents``, ``DeviceReports``) or the node's ingest, which skip the certificate, the
bound token, the signature and the event validation the tests claim to cover."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
UNIT = TESTS / "unit"

# A DeviceEvent(s) or DeviceReports made or imported by name (``partner_pb2.DeviceEvent`` is
# the gRPC wire message: fine), or the node's ingest called directly.
INJECTION = re.compile(
    r"(?<![\w.])Device(?:Events?|Reports)\s*\("
    r"|\bimport\b[^\n]*\bDevice(?:Events?|Reports)\b"
    r"|\.ingest\.ingest\s*\("
)


def injections(source: str) -> list[str]:
    """The lines of ``source`` that hand device events to the node past the partner API."""
    return [line.strip() for line in source.splitlines() if INJECTION.search(line)]


def test_no_test_outside_unit_injects_device_events_past_the_partner_api() -> None:
    found = {
        str(path.relative_to(TESTS)): hits
        for path in sorted(TESTS.rglob("*.py"))
        if UNIT not in path.parents and (hits := injections(path.read_text()))
    }
    assert found == {}, "post events as the partner does: tests/support/partner.py"


def test_the_check_finds_each_way_past_the_api_and_leaves_the_wire_message_alone() -> None:
    planted = """
from propdev.actors.messages import DeviceEvent, DeviceEvents
await node.system.ask("device:d", DeviceEvents((event,)), timeout=30)
await node.ask_device("device:d", DeviceReports((event,)))
event = DeviceEvent(partner_id="simulator", event_id="e", device_id="d", type="entry")
await site.node.ingest.ingest("simulator", [raw])
message = partner_pb2.DeviceEvent(event_id="e", device_id="d", type="entry")
status, body = await partner.post([event], token=token)
"""
    assert len(injections(planted)) == 5
