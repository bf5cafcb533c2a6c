"""The JSON log schema, trace ids from the current span, redaction, tracebacks without locals."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from propdev.observability import SCHEMA, Tracing, configure_logging


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("info", node_id="n1", stream=buffer, cache_loggers=False)
    try:
        yield buffer
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_every_record_starts_with_the_schema_keys(lines: io.StringIO) -> None:
    structlog.get_logger().info("door_opened", outcome="granted", route="/x")
    logging.getLogger("some.library").warning("library says %s", "hi")
    first, second = records(lines)
    assert tuple(first)[: len(SCHEMA)] == SCHEMA
    assert first["event"] == "door_opened" and first["node"] == "n1"
    assert first["level"] == "info" and first["time"].endswith("Z")
    assert (first["trace_id"], first["actor"], first["outcome"]) == (None, None, "granted")
    assert tuple(second)[: len(SCHEMA)] == SCHEMA and second["event"] == "library says hi"


def test_records_carry_the_current_spans_ids(lines: io.StringIO) -> None:
    tracing = Tracing()  # off: light spans, ids all the same
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.server_span("GET /x", parent, {}) as span:
        structlog.get_logger().info("inside")
    structlog.get_logger().info("outside")
    inside, outside = records(lines)
    assert inside["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert inside["span_id"] != "b7ad6b7169203331"
    assert outside["trace_id"] is None


def test_secrets_and_personal_data_are_redacted_whoever_logs_them(lines: io.StringIO) -> None:
    jwt = "eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    structlog.get_logger().warning(
        "careless",
        password="hunter2",
        phone="+7 900 000-00-00",
        full_name="Anna Petrova",
        detail=f"header was Bearer {jwt}",
    )
    out = lines.getvalue()
    for leaked in ("hunter2", "+7 900", "Anna Petrova", jwt):
        assert leaked not in out
    (record,) = records(lines)
    assert record["password"] == "[redacted]" and record["detail"] == "header was Bearer [redacted]"


def test_tracebacks_never_show_local_variables(lines: io.StringIO) -> None:
    def login(password: str) -> None:
        raise ValueError("bad login")

    try:
        login("s3cret-password")
    except ValueError:
        structlog.get_logger().exception("login_failed")
    out = lines.getvalue()
    assert "s3cret-password" not in out
    (record,) = records(lines)
    assert record["exception"][0]["exc_type"] == "ValueError"
