"""Observability: structured logs, Prometheus metrics, OpenTelemetry traces and SLOs."""

from __future__ import annotations

from propdev.observability.logging import SCHEMA, configure_logging
from propdev.observability.metrics import CONTENT_TYPE, LATENCY_BUCKETS, Metrics, bounded_method
from propdev.observability.rules import RULES_FILE, render_rules, write_rules
from propdev.observability.slo import (
    BURN_ALERTS,
    BURN_WINDOWS,
    DEFAULT_OBJECTIVES,
    Objective,
    RouteMatch,
    SloConfigError,
    SloTracker,
    WindowedCounter,
    load_objectives,
)
from propdev.observability.slo_shared import RedisSlo
from propdev.observability.telemetry import Telemetry, partner_outcome
from propdev.observability.tracing import (
    Tracing,
    current_traceparent,
    format_traceparent,
    mark_error,
    parse_traceparent,
)

__all__ = (
    "BURN_ALERTS",
    "BURN_WINDOWS",
    "CONTENT_TYPE",
    "DEFAULT_OBJECTIVES",
    "LATENCY_BUCKETS",
    "RULES_FILE",
    "SCHEMA",
    "Metrics",
    "Objective",
    "RedisSlo",
    "RouteMatch",
    "SloConfigError",
    "SloTracker",
    "Telemetry",
    "Tracing",
    "WindowedCounter",
    "bounded_method",
    "configure_logging",
    "current_traceparent",
    "format_traceparent",
    "load_objectives",
    "mark_error",
    "parse_traceparent",
    "partner_outcome",
    "render_rules",
    "write_rules",
)
