"""OpenTelemetry traces of one node: a server span per request, an internal span per device
open handled by its actor, a client span per partner call; W3C ``traceparent`` in and out.

Each node has its own ``TracerProvider`` (never the global one), so several nodes in one
process keep their spans apart. Tracing is *on* when spans have somewhere to go: an OTLP
endpoint (``PROPDEV_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``) or an exporter given
by the caller (tests use ``InMemorySpanExporter``). Off, no SDK span is made: a span is a
``NonRecordingSpan`` with fresh ids under the caller's trace (about 3 µs), so log lines still
carry ``trace_id``/``span_id`` and vendors still get a ``traceparent`` that joins the caller's
trace.

A valid incoming ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``, lower case, non-zero
ids, version not ``ff``) makes our server span its child; anything else starts a new trace.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = (
    "SpanKind",
    "Tracing",
    "current_traceparent",
    "format_traceparent",
    "parse_traceparent",
)

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_EMPTY = otel_context.Context()
_UNSAMPLED = TraceFlags(0)
Attributes = Mapping[str, AttributeValue]


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The remote parent named by a W3C ``traceparent`` header, or None when it is invalid."""
    if not value or len(value) < 55:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_hex, span_hex, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags, 16)))


def format_traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags & 0xFF:02x}"


def current_traceparent() -> str | None:
    """The ``traceparent`` to send downstream: the current span's, or None outside any span."""
    ctx = trace.get_current_span().get_span_context()
    return format_traceparent(ctx) if ctx.is_valid else None


class Tracing:
    """Spans of one node; see the module docstring for on and off."""

    def __init__(
        self,
        *,
        node_id: str = "",
        service_name: str = "propdev",
        otlp_endpoint: str | None = None,
        exporter: SpanExporter | None = None,
    ) -> None:
        self.otlp_endpoint = otlp_endpoint
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        if otlp_endpoint is None and exporter is None:
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

        resource = Resource.create({"service.name": service_name, "service.instance.id": node_id})
        provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON))
        if otlp_endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(otlp_endpoint)))
            )
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        self._provider = provider
        self._tracer = provider.get_tracer("propdev")

    @property
    def enabled(self) -> bool:
        """True when spans are recorded and exported."""
        return self._tracer is not None

    def server_span(
        self, name: str, traceparent: str | None, attributes: Attributes
    ) -> contextlib.AbstractContextManager[Span]:
        """The span of an incoming request: a child of ``traceparent`` if valid, else a root."""
        return self._span(name, SpanKind.SERVER, parse_traceparent(traceparent), attributes)

    def message_span(
        self, name: str, traceparent: str | None, attributes: Attributes
    ) -> contextlib.AbstractContextManager[Span]:
        """The span of an actor handling a message that carried ``traceparent``."""
        return self._span(name, SpanKind.INTERNAL, parse_traceparent(traceparent), attributes)

    def client_span(
        self, name: str, attributes: Attributes
    ) -> contextlib.AbstractContextManager[Span]:
        """The span of an outgoing call: a child of the current span."""
        parent = trace.get_current_span().get_span_context()
        return self._span(name, SpanKind.CLIENT, parent if parent.is_valid else None, attributes)

    def _span(
        self, name: str, kind: SpanKind, parent: SpanContext | None, attributes: Attributes
    ) -> contextlib.AbstractContextManager[Span]:
        if self._tracer is None:
            return _LightSpan(parent)
        ctx = _EMPTY if parent is None else trace.set_span_in_context(NonRecordingSpan(parent))
        return self._tracer.start_as_current_span(
            name,
            context=ctx,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    async def shutdown(self) -> None:
        """Flush and stop the exporters (off the event loop: OTLP export blocks)."""
        provider, self._provider, self._tracer = self._provider, None, None
        if provider is not None:
            import asyncio

            await asyncio.to_thread(provider.shutdown)


class _LightSpan:
    """Tracing off: new ids under the parent's trace, made current; nothing recorded."""

    __slots__ = ("_parent", "_token")

    def __init__(self, parent: SpanContext | None) -> None:
        self._parent = parent
        self._token: object = None

    def __enter__(self) -> Span:
        bits = random.getrandbits
        parent = self._parent
        if parent is None:
            ctx = SpanContext(bits(128) or 1, bits(64) or 1, False, _UNSAMPLED)
        else:
            ctx = SpanContext(parent.trace_id, bits(64) or 1, False, parent.trace_flags)
        span = NonRecordingSpan(ctx)
        self._token = otel_context.attach(trace.set_span_in_context(span, _EMPTY))
        return span

    def __exit__(self, *exc_info: object) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]


def mark_error(span: Span, description: str) -> None:
    """Set the span's status to error (a no-op on non-recording spans)."""
    if span.is_recording():
        span.set_status(Status(StatusCode.ERROR, description))


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP's traces URL from a base endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` style)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"
