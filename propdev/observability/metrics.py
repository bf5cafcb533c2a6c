"""Prometheus metrics of one node, in its own ``CollectorRegistry`` (never the global one).

Counted as things happen (label children looked up once and cached): HTTP requests by route
template and status, their latency, rate-limit rejections, WebSocket connections, partner
calls by partner, operation and outcome with their latency, breaker transitions. Set by
whoever does the work (``record_audit_checkpoint``, ``record_backup``): the time of the last
signed audit checkpoint and of the last successful backup, 0 until one happened. Read at
scrape time (``NodeCollector``, no hot-path cost): the actors by kind from
``ActorSystem.stats()``, mailbox depths, breaker states, bus messages published, the cluster
as this node sees it, push notifications, and the not-after of the node's certificates (and,
as last read from the store by ``GET /metrics``, of those signed from partners' CSRs).

Labels are bounded: route templates (never raw paths), a fixed set of methods, status codes,
partner ids, operations, outcomes, actor kinds. Never a device, user or request id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from propdev.actors import ActorSystem

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
"""Seconds; latency objectives must use one of these as their threshold (see ``slo.py``)."""

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BREAKER_STATES = ("closed", "open", "half-open")


ClusterView = Callable[[], Mapping[str, int]]
"""``members``, ``shards``, ``held``, ``unowned``, ``acquisitions``, ``losses``: the cluster as
one node sees it (an embedded node: one member holding every shard)."""

CertificateFiles = Callable[[], Mapping[tuple[str, str], Path]]
"""(kind, name) → PEM file: the certificates whose expiry is exported (``ca``, ``server``,
``partner``)."""


class PushCounts(Protocol):
    @property
    def pushed(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def failed(self) -> int: ...


class _Gateway(Protocol):
    @property
    def partner_id(self) -> str: ...

    @property
    def state(self) -> str: ...


def bounded_method(method: str) -> str:
    return method if method in METHODS else "OTHER"


class Metrics:
    """The metric families of one node and the cached children the hot paths use."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.http_requests = Counter(
            "propdev_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.http_duration = Histogram(
            "propdev_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.http_in_flight = Gauge(
            "propdev_http_requests_in_flight",
            "HTTP requests being handled (WebSocket sessions excluded).",
            registry=registry,
        )
        self.rate_limited = Counter(
            "propdev_rate_limit_rejections",
            "Requests refused with 429 by the per-client rate limit, by route template.",
            ("route",),
            registry=registry,
        )
        self.shed = Counter(
            "propdev_http_requests_shed",
            "Requests refused with 503 by admission control, by budget (api, partner) and "
            "reason (queue_full, queue_timeout).",
            ("budget", "reason"),
            registry=registry,
        )
        self.websocket_connections = Gauge(
            "propdev_websocket_connections",
            "WebSocket connections open now.",
            registry=registry,
        )
        self.websocket_opened = Counter(
            "propdev_websocket_connections_opened",
            "WebSocket connection requests received.",
            registry=registry,
        )
        self.partner_calls = Counter(
            "propdev_partner_calls",
            "Calls to partners, by partner, operation and outcome.",
            ("partner", "operation", "outcome"),
            registry=registry,
        )
        self.partner_duration = Histogram(
            "propdev_partner_call_duration_seconds",
            "Time of a call to a partner (guards included), by partner, operation and outcome.",
            ("partner", "operation", "outcome"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.breaker_transitions = Counter(
            "propdev_partner_breaker_transitions",
            "Circuit breaker state changes, by partner and the state entered.",
            ("partner", "to_state"),
            registry=registry,
        )
        self.keypad_events = Counter(
            "propdev_keypad_lockout_events",
            "Keypad lockouts: devices locked after repeated unknown guest-pass codes "
            "(event=locked) and codes refused at a locked device (event=refused).",
            ("event",),
            registry=registry,
        )
        self.audit_checkpoint_last = Gauge(
            "propdev_audit_checkpoint_last_timestamp_seconds",
            "When the last signed audit checkpoint was written (epoch seconds; 0: none yet).",
            registry=registry,
        )
        self.backup_last_success = Gauge(
            "propdev_backup_last_success_timestamp_seconds",
            "When the last backup succeeded (epoch seconds; 0: none known to this node).",
            registry=registry,
        )
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._partner: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._store_certificates: dict[str, dict[str, float]] = {}  # kind → name → not-after
        self._collector: NodeCollector | None = None

    # -- hot paths ---------------------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._http.get(key)
        if children is None:
            method = bounded_method(method)
            children = (
                self.http_requests.labels(method, route, str(status)),
                self.http_duration.labels(method, route),
            )
            self._http[key] = children
        children[0].inc()
        if seconds >= 0:
            children[1].observe(seconds)

    def observe_partner_call(
        self, partner: str, operation: str, outcome: str, seconds: float
    ) -> None:
        key = (partner, operation, outcome)
        children = self._partner.get(key)
        if children is None:
            children = (
                self.partner_calls.labels(partner, operation, outcome),
                self.partner_duration.labels(partner, operation, outcome),
            )
            self._partner[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def breaker_changed(self, partner: str, old: str, new: str) -> None:
        self.breaker_transitions.labels(partner, new).inc()

    def record_audit_checkpoint(self, at: float) -> None:
        """A signed audit checkpoint was written at ``at`` (epoch seconds); never goes back."""
        self.audit_checkpoint_last.set(max(at, _value(self.audit_checkpoint_last)))

    def record_backup(self, at: float) -> None:
        """A backup succeeded at ``at`` (epoch seconds); never goes back."""
        self.backup_last_success.set(max(at, _value(self.backup_last_success)))

    def record_store_certificates(self, kind: str, not_after: Mapping[str, float]) -> None:
        """The certificates of ``kind`` the store knows of now (name → not-after, epoch
        seconds), exported with the certificate files; replaces what was recorded before."""
        self._store_certificates[kind] = dict(not_after)

    # -- scrape time -------------------------------------------------------------------------

    def watch(
        self,
        *,
        system: ActorSystem | None = None,
        gateways: Mapping[str, _Gateway] | None = None,
        bus: object | None = None,
        cluster: ClusterView | None = None,
        push: PushCounts | None = None,
        certificates: CertificateFiles | None = None,
    ) -> None:
        """Report these at each scrape (once per node; a second call replaces the first)."""
        if self._collector is not None:
            self.registry.unregister(self._collector)
        self._collector = NodeCollector(
            system=system,
            gateways=gateways,
            bus=bus,
            cluster=cluster,
            push=push,
            certificates=certificates,
            store_certificates=self._store_certificates,
        )
        self.registry.register(self._collector)

    def render(self) -> bytes:
        """The registry in Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)


class NodeCollector(Collector):
    """Reads the actor system, the breakers and the bus when Prometheus scrapes."""

    def __init__(
        self,
        *,
        system: ActorSystem | None,
        gateways: Mapping[str, _Gateway] | None,
        bus: object | None,
        cluster: ClusterView | None = None,
        push: PushCounts | None = None,
        certificates: CertificateFiles | None = None,
        store_certificates: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self._system = system
        self._gateways = gateways
        self._bus = bus
        self._cluster = cluster
        self._push = push
        self._certificates = certificates
        self._store_certificates = store_certificates

    def describe(self) -> Iterable[Metric]:
        return ()  # names vary with what is watched; collect() at registration is skipped

    def collect(self) -> Iterator[Metric]:
        if self._system is not None:
            yield from _actor_metrics(self._system)
        if self._gateways is not None:
            state = GaugeMetricFamily(
                "propdev_partner_breaker_state",
                "1 for the state each partner's circuit breaker is in, 0 for the others.",
                labels=("partner", "state"),
            )
            for gateway in list(self._gateways.values()):
                current = gateway.state
                for name in BREAKER_STATES:
                    state.add_metric((gateway.partner_id, name), 1.0 if current == name else 0.0)
            yield state
        published = getattr(self._bus, "published", None)
        if isinstance(published, int):
            yield CounterMetricFamily(
                "propdev_bus_messages_published",
                "Messages published on the event bus by this node.",
                value=published,
            )
        received = getattr(self._bus, "received", None)
        if isinstance(received, int):  # the Redis bus: messages from other nodes, and their lag
            lag = SummaryMetricFamily(
                "propdev_bus_lag_seconds",
                "Time from publish on another node to delivery on this one (wall clocks).",
            )
            lag_sum = float(getattr(self._bus, "lag_sum", 0.0))
            lag.add_metric((), count_value=received, sum_value=lag_sum)
            yield lag
        if self._cluster is not None:
            yield from _cluster_metrics(self._cluster())
        if self._push is not None:
            pushes = CounterMetricFamily(
                "propdev_push_notifications",
                "Pushes to phones, by result: pushed (a provider accepted it), dropped (token "
                "gone, push rejected or given up), failed (an attempt failed; retried).",
                labels=("result",),
            )
            for result in ("pushed", "dropped", "failed"):
                pushes.add_metric((result,), float(getattr(self._push, result)))
            yield pushes
        if self._certificates is not None or self._store_certificates:
            files = self._certificates() if self._certificates is not None else {}
            yield _certificate_expiry(files, self._store_certificates or {})


def _value(gauge: Gauge) -> float:
    for metric in gauge.collect():
        for sample in metric.samples:
            return float(sample.value)
    return 0.0


def _cluster_metrics(view: Mapping[str, int]) -> Iterator[Metric]:
    gauges = (
        ("members", "propdev_cluster_members", "Live nodes of the cluster, as this node sees it."),
        ("shards", "propdev_cluster_shards", "Shards the device actors are placed in."),
        ("held", "propdev_cluster_shards_held", "Shards this node owns (holds the lease of)."),
        ("unowned", "propdev_cluster_shards_unowned", "Shards no live node owns, seen from here."),
    )
    for key, name, help_text in gauges:
        yield GaugeMetricFamily(name, help_text, value=float(view.get(key, 0)))
    yield CounterMetricFamily(
        "propdev_cluster_shard_acquisitions",
        "Shard leases this node took (at start, on rebalance and when a node failed).",
        value=float(view.get("acquisitions", 0)),
    )
    yield CounterMetricFamily(
        "propdev_cluster_shard_losses",
        "Shard leases this node lost without handing them off (expired, taken over).",
        value=float(view.get("losses", 0)),
    )


def _certificate_expiry(
    files: Mapping[tuple[str, str], Path], stored: Mapping[str, Mapping[str, float]]
) -> Metric:
    family = GaugeMetricFamily(
        "propdev_certificate_expiry_timestamp_seconds",
        "The not-after of the node's certificates and of those signed for partners "
        "(epoch seconds), by kind and name.",
        labels=("kind", "name"),
    )
    for (kind, name), path in sorted(files.items()):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            continue  # missing or unreadable: doctor names it; no sample, no false date
        family.add_metric((kind, name), cert.not_valid_after_utc.timestamp())
    for kind, certificates in sorted(stored.items()):
        for name, not_after in sorted(certificates.items()):
            if (kind, name) not in files:
                family.add_metric((kind, name), not_after)
    return family


def _actor_metrics(system: ActorSystem) -> Iterator[Metric]:
    stats = system.stats()
    kinds: dict[str, dict[str, int]] = stats["kinds"]
    families: list[tuple[str, str, str, type[GaugeMetricFamily | CounterMetricFamily]]] = [
        ("active", "propdev_actors_active", "Activated actors, by kind.", GaugeMetricFamily),
        (
            "activations",
            "propdev_actor_activations",
            "Actor activations, by kind.",
            CounterMetricFamily,
        ),
        (
            "passivations",
            "propdev_actor_passivations",
            "Actors passivated after being idle, by kind.",
            CounterMetricFamily,
        ),
        (
            "restarts",
            "propdev_actor_restarts",
            "Actor restarts by their supervisor, by kind.",
            CounterMetricFamily,
        ),
        (
            "dead_letters",
            "propdev_actor_dead_letters",
            "Messages dead-lettered, by the kind of actor they were for.",
            CounterMetricFamily,
        ),
    ]
    for key, name, help_text, family_type in families:
        family = family_type(name, help_text, labels=("kind",))
        for kind, numbers in kinds.items():
            family.add_metric((kind,), float(numbers.get(key, 0)))
        yield family
    depth = GaugeMetricFamily(
        "propdev_actor_mailbox_depth", "Messages waiting in mailboxes, by kind.", labels=("kind",)
    )
    deepest = GaugeMetricFamily(
        "propdev_actor_mailbox_depth_max",
        "The deepest mailbox of each kind.",
        labels=("kind",),
    )
    for supervisor in system.tree.root.children():
        if supervisor.id not in kinds:
            continue
        total = most = 0
        for child in supervisor.children() if hasattr(supervisor, "children") else ():
            mailbox = getattr(child, "mailbox", None)
            if mailbox is not None:
                n = len(mailbox)
                total += n
                most = max(most, n)
        depth.add_metric((supervisor.id,), float(total))
        deepest.add_metric((supervisor.id,), float(most))
    yield depth
    yield deepest
    yield GaugeMetricFamily(
        "propdev_actor_system_failed",
        "1 once the node's root supervisor gave up.",
        value=1.0 if stats["failed"] else 0.0,
    )
