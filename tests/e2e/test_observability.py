"""Logs, metrics, traces and SLOs of a real node over HTTPS, as an operator would use them.

Where our telemetry is about a vendor's behaviour (its errors in the SLO and the partner-call
metrics, the breaker's transitions) the vendor is ``run.py partner-sim``, its own process over
HTTPS, its faults set through its control API; elsewhere the embedded simulator is the vendor
(its control API on the node's ``/sim/``). That a vendor process receives our ``traceparent``
over HTTPS is asserted in ``test_second_vendor.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import secrets
import shutil
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from propdev.observability import SCHEMA, configure_logging
from tests.e2e.conftest import RunningNode, node_settings, running_node, running_node_and_vendor
from tests.support.oauth_client import login

OPEN_ROUTE = "/api/v1/access-points/{id}/open"

Logs = Callable[[], list[dict[str, Any]]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def json_logs() -> Iterator[tuple[io.StringIO, Logs]]:
    """The production JSON log pipeline, writing into a buffer; restored afterwards."""
    with production_logs("debug") as logs:
        yield logs


@contextlib.contextmanager
def production_logs(log_level: str) -> Iterator[tuple[io.StringIO, Logs]]:
    """``configure_logging(log_level)`` into a buffer, and its records; restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("aiohttp.access").disabled
    buffer = io.StringIO()
    configure_logging(log_level, node_id="test-node", stream=buffer, cache_loggers=False)

    def records() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    try:
        yield buffer, records
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("aiohttp.access").disabled = access


async def open_door(
    node: RunningNode, token: str, door: str, **headers: str
) -> tuple[int, dict[str, Any]]:
    async with node.http.post(
        f"{node.url}/api/v1/access-points/{door}/open", headers=bearer(token) | headers
    ) as resp:
        return resp.status, await resp.json()


async def sim(node: RunningNode, method: str, path: str, **body: Any) -> Any:
    """The vendor simulator's control API: the node's own ``/sim/`` (embedded), or the
    ``partner-sim`` process's over HTTPS."""
    url = f"{node.credentials['partner_sim_url']}{path}"
    async with node.http.request(method, url, json=body or None) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def scrape(node: RunningNode) -> tuple[str, dict[tuple[str, frozenset[Any]], float]]:
    async with node.http.get(f"{node.url}/metrics") as resp:  # no token: public
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def promtool() -> str | None:
    found = shutil.which("promtool")
    if found is None and os.environ.get("CI"):
        pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
    return found


async def test_one_trace_runs_from_the_request_through_the_actor_to_the_vendor_and_into_the_logs(
    tmp_path: Path, json_logs: tuple[io.StringIO, Logs]
) -> None:
    _, records = json_logs
    exporter = InMemorySpanExporter()
    async with running_node(node_settings(tmp_path), span_exporter=exporter) as node:
        token = await node.token_for("anna")
        door = node.resident("anna")["access_point_ids"][0]
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)

        status, body = await open_door(
            node, token, door, traceparent=f"00-{trace_id}-{caller_span}-01"
        )
        assert status == 200, body
        received = (await sim(node, "GET", "/sim/v1/commands"))[-1]

    # The vendor got our trace id, with our client span as its parent.
    version, vendor_trace, vendor_parent, flags = received["traceparent"].split("-")
    assert (version, vendor_trace, flags) == ("00", trace_id, "01")

    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == int(trace_id, 16)]
    by_kind = {s.kind: s for s in spans}
    server, actor, client = (
        by_kind[SpanKind.SERVER],
        by_kind[SpanKind.INTERNAL],
        by_kind[SpanKind.CLIENT],
    )
    assert server.name == f"POST {OPEN_ROUTE}"
    assert server.parent is not None and server.parent.span_id == int(caller_span, 16)
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 200
    assert actor.parent is not None and actor.parent.span_id == server.context.span_id
    assert actor.attributes is not None and actor.attributes["propdev.actor"] == f"device:{door}"
    assert client.parent is not None and client.parent.span_id == actor.context.span_id
    assert client.attributes is not None and client.attributes["peer.service"] == "simulator"
    assert int(vendor_parent, 16) == client.context.span_id

    # The log lines of that request carry the trace id, and the span they were written in.
    lines = {r["event"]: r for r in records() if r["trace_id"] == trace_id}
    assert {"http_request", "partner_call", "access_decided"} <= set(lines)
    assert lines["http_request"]["span_id"] == format(server.context.span_id, "016x")
    assert lines["http_request"]["route"] == OPEN_ROUTE and lines["http_request"]["status"] == 200
    assert lines["http_request"]["outcome"] == "ok"
    call = lines["partner_call"]
    assert call["span_id"] == format(client.context.span_id, "016x")
    assert (call["actor"], call["partner"], call["outcome"]) == (
        f"device:{door}",
        "simulator",
        "ok",
    )
    assert lines["access_decided"]["actor"] == f"device:{door}"
    assert lines["access_decided"]["span_id"] == format(actor.context.span_id, "016x")


async def test_without_an_exporter_the_vendor_still_joins_the_callers_trace(
    node: RunningNode,
) -> None:
    token = await node.token_for("anna")
    door = node.resident("anna")["access_point_ids"][0]
    trace_id = secrets.token_hex(16)
    status, _ = await open_door(node, token, door, traceparent=f"00-{trace_id}-{'ab' * 8}-01")
    assert status == 200
    status, _ = await open_door(
        node, token, door, traceparent="00-" + "0" * 32 + "-" + "1" * 16 + "-01"
    )
    assert status == 200
    first, second = (await sim(node, "GET", "/sim/v1/commands"))[-2:]
    assert first["traceparent"].split("-")[1] == trace_id
    assert first["traceparent"].split("-")[2] != "ab" * 8  # a span of ours in between
    # An all-zero trace id is invalid: a new trace starts.
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", second["traceparent"])
    assert second["traceparent"].split("-")[1] != "0" * 32


async def test_logs_are_json_lines_of_one_schema_without_personal_data_or_secrets(
    tmp_path: Path, json_logs: tuple[io.StringIO, Logs]
) -> None:
    buffer, records = json_logs
    secrets_seen: list[str] = []
    async with running_node(node_settings(tmp_path)) as node:
        creds = node.credentials
        tokens: list[dict[str, Any]] = []
        for resident in creds["residents"]:
            tokens.append(
                await login(
                    node.http,
                    node.url,
                    client_id=creds["mobile_client_id"],
                    redirect_uri=creds["redirect_uri"],
                    username=resident["username"],
                    password=resident["password"],
                )
            )
        operator = creds["operator"]
        tokens.append(
            await login(
                node.http,
                node.url,
                client_id=creds["mobile_client_id"],
                redirect_uri=creds["redirect_uri"],
                username=operator["username"],
                password=operator["password"],
                totp_secret=operator["totp_secret"],
            )
        )
        every_point = {p["id"] for p in creds["access_points"]}
        denied = 0
        for token in tokens[:-1]:
            access = token["access_token"]
            async with node.http.get(f"{node.url}/api/v1/me", headers=bearer(access)) as resp:
                assert resp.status == 200
            for door in sorted(every_point):
                status, _ = await open_door(node, access, door)
                assert status in (200, 403)
                denied += status == 403
        assert denied >= 1  # refusals are logged too
        async with node.http.get(
            f"{node.url}/admin/api/v1/actors", headers=bearer(tokens[-1]["access_token"])
        ) as resp:
            assert resp.status == 200
        async with node.http.get(
            f"{node.url}/api/v1/me", headers=bearer(tokens[0]["access_token"] + "x")
        ) as resp:
            assert resp.status == 401  # a bad token is logged as a request, not as a token
        for resident in creds["residents"]:
            secrets_seen += [resident["full_name"], resident["phone"], resident["password"]]
        secrets_seen += [operator["password"], operator["totp_secret"]]
        for token in tokens:
            secrets_seen += [
                token[k] for k in ("access_token", "refresh_token", "id_token") if token.get(k)
            ]

    output = buffer.getvalue()
    lines = records()
    requests = [r for r in lines if r["event"] == "http_request"]
    assert len(requests) >= 20 and any(r["route"].startswith("/oauth/") for r in requests)
    for record in lines:
        assert tuple(record)[: len(SCHEMA)] == SCHEMA, record
        assert record["node"] == "test-node"
    for secret in secrets_seen:
        assert secret and secret not in output, "a secret or personal datum was logged"
    assert "Bearer " not in output and "eyJ" not in output


async def test_audit_entries_reach_the_log_as_their_own_stream_without_personal_fields(
    tmp_path: Path,
) -> None:
    # At the warning level: the audit stream is not a diagnostic the log level filters.
    with production_logs("warning") as (buffer, records):
        async with running_node(node_settings(tmp_path)) as node:
            anna = node.resident("anna")
            door = anna["access_point_ids"][0]
            status, opened = await open_door(node, await node.token_for("anna"), door)
            assert status == 200, opened
            operator = await node.token_for(node.credentials["operator"]["username"])
            async with node.http.get(
                f"{node.url}/admin/api/v1/audit",
                params={"access_point_id": door, "action": "open"},
                headers=bearer(operator),
            ) as resp:
                assert resp.status == 200
                stored = await resp.json()

    output = buffer.getvalue()
    stream = [r for r in records() if r["event"] == "audit_entry"]
    [entry] = stored["entries"]
    [open_event] = [r for r in stream if r["action"] == "open"]
    assert open_event["command_id"] == opened["command_id"] == entry["command_id"]
    assert open_event["access_point_id"] == door
    assert open_event["decision"] == "granted"
    assert open_event["actor"] == entry["actor"] == f"user:{anna['id']}"
    assert (open_event["id"], open_event["hash"]) == (entry["id"], entry["hash"])
    assert open_event["level"] == "info" and open_event["node"] == "test-node"
    logins = [r for r in stream if r["action"] == "auth.login"]
    assert len(logins) == 2  # anna's and the operator's, whose username and address stay out
    for record in stream:
        assert tuple(record)[: len(SCHEMA)] == SCHEMA
        assert "personal" not in record and "personal_digest" not in record
    assert anna["username"] not in output
    values = {str(v) for record in stream for v in record.values()}
    assert not values & {node.credentials["operator"]["username"], "127.0.0.1", "::1"}
    assert not [r for r in records() if r["event"] == "http_request"]  # the level held


async def test_metrics_parse_move_with_requests_and_pass_promtool(node: RunningNode) -> None:
    token = await node.token_for("anna")
    door = node.resident("anna")["access_point_ids"][0]
    opened = (
        "propdev_http_requests_total",
        frozenset({("method", "POST"), ("route", OPEN_ROUTE), ("status", "200")}),
    )
    call = (
        "propdev_partner_calls_total",
        frozenset({("partner", "simulator"), ("operation", "open"), ("outcome", "ok")}),
    )
    _, before = await scrape(node)

    for _ in range(3):
        status, _ = await open_door(node, token, door)
        assert status == 200
    async with node.http.ws_connect(f"{node.url}/api/v1/ws", headers=bearer(token)) as ws:
        await ws.send_str("ping")
        assert (await ws.receive()).data == "pong"
        text, after = await scrape(node)

    assert after[opened] - before.get(opened, 0.0) == 3
    assert after[call] - before.get(call, 0.0) == 3
    latency_count = (
        "propdev_http_request_duration_seconds_count",
        frozenset({("method", "POST"), ("route", OPEN_ROUTE)}),
    )
    assert after[latency_count] >= 3
    assert after[("propdev_websocket_connections", frozenset())] == 1
    assert after[("propdev_actors_active", frozenset({("kind", "device")}))] >= 1
    assert after[("propdev_actor_activations_total", frozenset({("kind", "device")}))] >= 1
    assert (
        after[
            (
                "propdev_partner_breaker_state",
                frozenset({("partner", "simulator"), ("state", "closed")}),
            )
        ]
        == 1
    )
    assert after[("propdev_bus_messages_published_total", frozenset())] >= 3
    # Bounded labels only: no access point, user or request id anywhere.
    assert door not in text and node.resident("anna")["username"] not in text

    tool = promtool()
    if tool is not None:
        checked = await asyncio.create_subprocess_exec(
            tool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
        )
        out, _ = await asyncio.wait_for(checked.communicate(text.encode()), 60)
        assert checked.returncode == 0, out.decode()


@pytest.fixture
async def vendor_node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    """A node whose vendor is ``run.py partner-sim``, its own process over HTTPS."""
    async with running_node_and_vendor(tmp_path) as node:
        assert node.credentials["partner_sim_url"] != node.url  # not the embedded simulator
        yield node


@pytest.mark.slow  # a vendor process
async def test_vendor_errors_spend_the_door_open_budget_exactly_as_caused(
    vendor_node: RunningNode,
) -> None:
    node = vendor_node
    anna = await node.token_for("anna")
    operator = await node.token_for("operator")
    door = node.resident("anna")["access_point_ids"][0]

    for _ in range(3):
        assert (await open_door(node, anna, door))[0] == 200
    await sim(node, "POST", "/sim/v1/faults", mode="error")
    for _ in range(2):
        status, body = await open_door(node, anna, door)
        assert status == 502, body
    await sim(node, "POST", "/sim/v1/faults", mode="ok")

    async with node.http.get(f"{node.url}/admin/api/v1/slo", headers=bearer(anna)) as resp:
        assert resp.status == 403  # operators only
    async with node.http.get(f"{node.url}/admin/api/v1/slo", headers=bearer(operator)) as resp:
        assert resp.status == 200
        report = await resp.json()
    objectives = {o["name"]: o for o in report["objectives"]}

    availability = objectives["door_opens_availability"]
    assert (availability["total"], availability["good"], availability["bad"]) == (5, 3, 2)
    assert availability["sli"] == pytest.approx(0.6)
    burn = (2 / 5) / (1 - 0.999)
    assert availability["burn_rates"] == {
        w: pytest.approx(burn) for w in availability["burn_rates"]
    }
    assert availability["error_budget"]["remaining_ratio"] == pytest.approx(1 - burn)
    firing = {a["name"]: a["firing"] for a in availability["alerts"]}
    assert firing == {"fast_burn": True, "slow_burn": True, "steady_burn": True}

    latency = objectives["door_opens_latency"]
    assert (latency["total"], latency["good"]) == (5, 5)
    assert latency["error_budget"]["remaining_ratio"] == 1.0
    assert objectives["partner_callbacks_availability"]["total"] == 0
    assert objectives["utilities_gateway_availability"]["sli"] is None

    _, samples = await scrape(node)
    errors = (
        "propdev_partner_calls_total",
        frozenset({("partner", "simulator"), ("operation", "open"), ("outcome", "unavailable")}),
    )
    assert samples[errors] == 2


@pytest.mark.slow  # a vendor process
async def test_breaker_transitions_are_counted(tmp_path: Path) -> None:
    breaker = {"PROPDEV_BREAKER_FAILURES": "2", "PROPDEV_BREAKER_RESET": "60"}
    async with running_node_and_vendor(tmp_path, **breaker) as node:
        token = await node.token_for("anna")
        door = node.resident("anna")["access_point_ids"][0]
        await sim(node, "POST", "/sim/v1/faults", mode="error")
        statuses = [(await open_door(node, token, door))[0] for _ in range(3)]
        assert statuses == [502, 502, 503]
        received = await sim(node, "GET", "/sim/v1/commands")
        _, samples = await scrape(node)
    assert received == []  # errors record nothing at the vendor; the open circuit sent nothing
    opened = (
        "propdev_partner_breaker_transitions_total",
        frozenset({("partner", "simulator"), ("to_state", "open")}),
    )
    assert samples[opened] == 1
    state = (
        "propdev_partner_breaker_state",
        frozenset({("partner", "simulator"), ("state", "open")}),
    )
    assert samples[state] == 1
    refused = (
        "propdev_partner_calls_total",
        frozenset({("partner", "simulator"), ("operation", "open"), ("outcome", "circuit_open")}),
    )
    assert samples[refused] == 1
