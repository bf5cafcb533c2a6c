"""structlog as JSON lines on stdout, one schema for every record.

Every line starts with the same keys, present (``null`` when not known) in every record, so
ELK or Loki index them without parsing rules::

    time, level, node, event, trace_id, span_id, actor, partner, outcome, ...

followed by the record's own data (``request_id``, ``route``, ``status``, ``latency_ms`` ...).
``trace_id``/``span_id`` come from the current OpenTelemetry span (see ``tracing.py``);
``actor`` is bound by the actor runtime for the messages it handles; ``request_id`` by the
request middleware.

Personal data and secrets are kept out twice: the code logs ids, never names, phones,
passwords or tokens; and as a safety net values under sensitive keys are replaced and anything
shaped like a JWT is masked. Tracebacks never show local variables (structlog's default would).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from structlog.tracebacks import ExceptionDictTransformer

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

SCHEMA = ("time", "level", "node", "event", "trace_id", "span_id", "actor", "partner", "outcome")
"""The keys every record has, in this order."""

SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "totp_secret",
        "otp",
        "code_verifier",
        "cookie",
        "api_key",
        "full_name",
        "phone",
        "email",
    }
)
"""Keys whose values are never written, whoever logs them."""

REDACTED = "[redacted]"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

_get_current_span = trace.get_current_span
_EXCEPTIONS = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))


def configure_logging(
    level: str = "info",
    *,
    node_id: str = "",
    stream: TextIO | None = None,
    cache_loggers: bool = True,
) -> None:
    """Configure structlog (and the stdlib root logger) to print JSON lines.

    ``stream`` defaults to ``sys.stdout``; ``cache_loggers=False`` lets tests configure and
    restore the logging set-up around themselves.
    """
    numeric = _LEVELS.get(level, logging.INFO)
    out = stream if stream is not None else sys.stdout
    shared = processors(node_id)
    structlog.configure(
        processors=[
            *shared,
            _EXCEPTIONS,
            order_schema,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=cache_loggers,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _EXCEPTIONS,
                order_schema,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))  # libraries: warnings and up
    logging.getLogger("aiohttp.access").disabled = True  # our middleware logs each request


def processors(node_id: str = "") -> list[structlog.types.Processor]:
    """The chain that turns a call into a record of the schema (before rendering)."""
    chain: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]
    if node_id:
        chain.append(_add_node(node_id))
    chain += [add_trace_ids, redact]
    return chain


def add_trace_ids(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """``trace_id`` and ``span_id`` of the current span (W3C hex), unless given explicitly."""
    if "trace_id" not in event:
        ctx = _get_current_span().get_span_context()
        if ctx.trace_id:
            event["trace_id"] = format(ctx.trace_id, "032x")
            event["span_id"] = format(ctx.span_id, "016x")
    return event


def redact(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace values of sensitive keys; mask JWT-shaped strings anywhere at the top level."""
    for key, value in event.items():
        if key in SENSITIVE_KEYS:
            event[key] = REDACTED
        elif isinstance(value, str) and "eyJ" in value:
            event[key] = _JWT.sub(REDACTED, value)
    return event


def order_schema(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The schema's keys first, in order, ``None`` when missing; then the rest as given."""
    ordered: dict[str, Any] = {key: event.pop(key, None) for key in SCHEMA}
    ordered.update(event)
    return ordered


def _add_node(node_id: str) -> structlog.types.Processor:
    def add(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("node", node_id)
        return event

    return add
