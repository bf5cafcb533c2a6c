"""``Telemetry``: one node's metrics, tracing and SLO tracker, and the hooks that feed them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from propdev.observability.metrics import CertificateFiles, ClusterView, Metrics, PushCounts
from propdev.observability.slo import SloTracker, load_objectives
from propdev.observability.tracing import Tracing, current_traceparent, mark_error
from propdev.partners.errors import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from propdev.actors import ActorSystem
    from propdev.config import Settings

log = structlog.get_logger()

_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (PartnerRefusedError, "refused"),
    (CircuitOpenError, "circuit_open"),
    (BulkheadFullError, "bulkhead_full"),
    (PartnerTimeoutError, "timeout"),
    (PartnerUnavailableError, "unavailable"),
    (asyncio.CancelledError, "cancelled"),
)


def partner_outcome(exc: BaseException | None) -> str:
    """``ok``, ``refused`` (an answer), ``circuit_open``, ``bulkhead_full``, ``timeout``,
    ``unavailable``, ``cancelled`` or ``error``: a bounded label."""
    if exc is None:
        return "ok"
    for kind, outcome in _OUTCOMES:
        if isinstance(exc, kind):
            return outcome
    return "error"


class Telemetry:
    """What one node measures; built once by the node and passed to whoever feeds it."""

    def __init__(
        self,
        *,
        node_id: str = "",
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        slo: SloTracker | None = None,
    ) -> None:
        self.node_id = node_id
        self.metrics = metrics if metrics is not None else Metrics()
        self.tracing = tracing if tracing is not None else Tracing(node_id=node_id)
        self.slo = slo if slo is not None else SloTracker(load_objectives(None))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        span_exporter: SpanExporter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Telemetry:
        """Objectives from ``PROPDEV_SLO_FILE``; OTLP export when an endpoint is configured."""
        return cls(
            node_id=settings.node_id,
            tracing=Tracing(
                node_id=settings.node_id,
                otlp_endpoint=settings.otlp_endpoint,
                exporter=span_exporter,
            ),
            slo=SloTracker(load_objectives(settings.slo_file), clock=clock),
        )

    # -- hooks ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def partner_call(self, partner: str, operation: str) -> Iterator[str | None]:
        """Around one partner call: a client span, the metrics and one ``partner_call`` record.

        Yields the ``traceparent`` to send the vendor (a child of the client span).
        """
        started = time.perf_counter()
        outcome = "ok"
        with self.tracing.client_span(
            f"partner {operation}",
            {"peer.service": partner, "propdev.partner.operation": operation},
        ) as span:
            try:
                yield current_traceparent()
            except BaseException as exc:
                outcome = partner_outcome(exc)
                if outcome != "refused":
                    mark_error(span, outcome)
                raise
            finally:
                seconds = time.perf_counter() - started
                self.metrics.observe_partner_call(partner, operation, outcome, seconds)
                if span.is_recording():
                    span.set_attribute("propdev.outcome", outcome)
                (log.info if outcome in ("ok", "refused") else log.warning)(
                    "partner_call",
                    partner=partner,
                    operation=operation,
                    outcome=outcome,
                    latency_ms=round(seconds * 1000, 2),
                )

    def breaker_changed(self, partner: str, old: str, new: str) -> None:
        """``PartnerGateway(on_state_change=...)``: count the transition."""
        self.metrics.breaker_changed(partner, old, new)

    def keypad_event(self, event: str) -> None:
        """``KeypadLockout(on_event=...)``: count a device locked or a code refused."""
        self.metrics.keypad_events.labels(event).inc()

    def watch(
        self,
        *,
        system: ActorSystem | None = None,
        gateways: Mapping[str, Any] | None = None,
        bus: object | None = None,
        cluster: ClusterView | None = None,
        push: PushCounts | None = None,
        certificates: CertificateFiles | None = None,
    ) -> None:
        """Report these at scrape time (see ``Metrics.watch``)."""
        self.metrics.watch(
            system=system,
            gateways=gateways,
            bus=bus,
            cluster=cluster,
            push=push,
            certificates=certificates,
        )

    def record_audit_checkpoint(self, at: float) -> None:
        """A signed audit checkpoint was written at ``at`` (epoch seconds)."""
        self.metrics.record_audit_checkpoint(at)

    def record_backup(self, at: float) -> None:
        """A backup succeeded at ``at`` (epoch seconds)."""
        self.metrics.record_backup(at)

    async def shutdown(self) -> None:
        await self.tracing.shutdown()
