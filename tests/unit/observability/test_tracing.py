"""W3C trace context in and out; spans of one node, recorded or light."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from propdev.observability import (
    Tracing,
    current_traceparent,
    format_traceparent,
    parse_traceparent,
)
from propdev.observability.tracing import traces_url

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_valid_traceparent_is_parsed_and_written_back_the_same() -> None:
    ctx = parse_traceparent(VALID)
    assert ctx is not None and ctx.is_remote and ctx.trace_flags.sampled
    assert format_traceparent(ctx) == VALID
    future = parse_traceparent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra")
    assert future is not None  # a later version may add fields


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        VALID.upper(),
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
        VALID + "-extra",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(value: str | None) -> None:
    assert parse_traceparent(value) is None
    with Tracing().server_span("GET /x", value, {}) as span:
        ctx = span.get_span_context()
        assert ctx.is_valid and not ctx.is_remote
    assert current_traceparent() is None  # detached again


def test_recorded_spans_nest_server_message_client() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(node_id="n1", exporter=exporter)
    assert tracing.enabled
    with tracing.server_span("POST /open", VALID, {"http.route": "/open"}):
        sent = current_traceparent()
    with tracing.message_span("device open", sent, {"propdev.actor": "device:1"}):
        with tracing.client_span("partner open", {"peer.service": "sim"}):
            to_vendor = current_traceparent()
    server, client, message = exporter.get_finished_spans()
    assert [s.kind for s in (server, message, client)] == [
        SpanKind.SERVER,
        SpanKind.INTERNAL,
        SpanKind.CLIENT,
    ]
    assert {s.context.trace_id for s in (server, message, client)} == {
        int("0af7651916cd43dd8448eb211c80319c", 16)
    }
    assert server.parent is not None and server.parent.span_id == int("b7ad6b7169203331", 16)
    assert message.parent is not None and message.parent.span_id == server.context.span_id
    assert client.parent is not None and client.parent.span_id == message.context.span_id
    assert to_vendor == format_traceparent(client.context)
    assert server.resource.attributes["service.instance.id"] == "n1"


def test_off_nothing_is_recorded_but_ids_still_chain() -> None:
    tracing = Tracing()
    assert not tracing.enabled
    with tracing.message_span("device open", VALID, {}) as message:
        assert not message.is_recording()
        with tracing.client_span("partner open", {}):
            sent = current_traceparent()
    assert sent is not None
    _, trace_id, parent_id, flags = sent.split("-")
    assert trace_id == "0af7651916cd43dd8448eb211c80319c" and flags == "01"
    assert parent_id not in ("b7ad6b7169203331", format(message.get_span_context().span_id, "016x"))


def test_otlp_endpoint_urls() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/v1/traces/") == "http://collector:4318/v1/traces"
