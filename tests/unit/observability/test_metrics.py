"""Metric families, bounded labels, and the scrape-time collector over a real actor system."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from propdev.actors import Actor, ActorSystem
from propdev.observability import Metrics, Telemetry, partner_outcome
from propdev.partners import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def test_requests_are_counted_by_route_template_and_status() -> None:
    metrics = Metrics()
    metrics.observe_request("POST", "/api/v1/access-points/{id}/open", 200, 0.03)
    metrics.observe_request("POST", "/api/v1/access-points/{id}/open", 200, 3.5)
    metrics.observe_request("BREW", "unmatched", 404, 0.001)  # any method: one bounded label
    found = samples(metrics)
    route = ("route", "/api/v1/access-points/{id}/open")
    assert (
        found[
            (
                "propdev_http_requests_total",
                frozenset({("method", "POST"), route, ("status", "200")}),
            )
        ]
        == 2
    )
    bucket = frozenset({("method", "POST"), route, ("le", "2.0")})
    assert found[("propdev_http_request_duration_seconds_bucket", bucket)] == 1
    other = frozenset({("method", "OTHER"), ("route", "unmatched"), ("status", "404")})
    assert found[("propdev_http_requests_total", other)] == 1


def test_partner_outcomes_are_a_bounded_set() -> None:
    assert partner_outcome(None) == "ok"
    assert partner_outcome(PartnerRefusedError("device_offline")) == "refused"
    assert partner_outcome(CircuitOpenError("p", 1.0)) == "circuit_open"
    assert partner_outcome(BulkheadFullError("p", 1)) == "bulkhead_full"
    assert partner_outcome(PartnerTimeoutError()) == "timeout"
    assert partner_outcome(PartnerUnavailableError()) == "unavailable"
    assert partner_outcome(KeyError("x")) == "error"


def test_a_partner_call_is_timed_counted_and_yields_the_traceparent_to_send() -> None:
    telemetry = Telemetry(node_id="n1")
    with telemetry.partner_call("sim", "open") as traceparent:
        assert traceparent is not None and traceparent.startswith("00-")
    try:
        with telemetry.partner_call("sim", "open"):
            raise PartnerUnavailableError("down")
    except PartnerUnavailableError:
        pass
    telemetry.breaker_changed("sim", "closed", "open")
    found = samples(telemetry.metrics)
    labels = {("partner", "sim"), ("operation", "open")}
    assert found[("propdev_partner_calls_total", frozenset(labels | {("outcome", "ok")}))] == 1
    assert (
        found[("propdev_partner_calls_total", frozenset(labels | {("outcome", "unavailable")}))]
        == 1
    )
    transitions = frozenset({("partner", "sim"), ("to_state", "open")})
    assert found[("propdev_partner_breaker_transitions_total", transitions)] == 1


class Echo(Actor):
    async def receive(self, message: object) -> object:
        return message


class _Gateway:
    partner_id = "sim"
    state = "half-open"


class _Bus:
    published = 7


async def test_the_collector_reads_actors_breakers_and_bus_at_scrape_time() -> None:
    system = ActorSystem("n1", sweep_interval=float("inf"))
    system.register_kind("echo", lambda address: Echo())
    await system.start()
    try:
        metrics = Metrics()
        metrics.watch(system=system, gateways={"sim": _Gateway()}, bus=_Bus())
        assert await system.ask("echo:1", "hi") == "hi"
        assert await system.ask("echo:2", "hi") == "hi"
        found: dict[Any, float] = samples(metrics)
    finally:
        await system.stop()
    kind = frozenset({("kind", "echo")})
    assert found[("propdev_actors_active", kind)] == 2
    assert found[("propdev_actor_activations_total", kind)] == 2
    assert found[("propdev_actor_mailbox_depth", kind)] == 0
    assert found[("propdev_actor_dead_letters_total", kind)] == 0
    assert (
        found[
            (
                "propdev_partner_breaker_state",
                frozenset({("partner", "sim"), ("state", "half-open")}),
            )
        ]
        == 1
    )
    assert (
        found[("propdev_partner_breaker_state", frozenset({("partner", "sim"), ("state", "open")}))]
        == 0
    )
    assert found[("propdev_bus_messages_published_total", frozenset())] == 7
    assert found[("propdev_actor_system_failed", frozenset())] == 0


def test_two_nodes_in_one_process_keep_their_metrics_apart() -> None:
    first, second = Metrics(), Metrics()
    first.observe_request("GET", "/healthz", 200, 0.001)
    assert (
        "propdev_http_requests_total",
        frozenset({("method", "GET"), ("route", "/healthz"), ("status", "200")}),
    ) not in samples(second)


def test_checkpoint_and_backup_times_start_at_zero_and_never_go_back() -> None:
    metrics = Metrics()
    checkpoint = ("propdev_audit_checkpoint_last_timestamp_seconds", frozenset())
    backup = ("propdev_backup_last_success_timestamp_seconds", frozenset())
    assert samples(metrics)[checkpoint] == 0.0
    assert samples(metrics)[backup] == 0.0
    metrics.record_audit_checkpoint(1_800_000_000.0)
    metrics.record_backup(1_800_000_100.0)
    metrics.record_backup(1_700_000_000.0)  # a late report of an older backup
    found = samples(metrics)
    assert found[checkpoint] == 1_800_000_000.0
    assert found[backup] == 1_800_000_100.0


def test_the_collector_reads_the_cluster_push_and_certificate_expiry(tmp_path: Path) -> None:
    from propdev.pki import ensure_ca, load_cert

    ca = ensure_ca(tmp_path)
    pushes = SimpleNamespace(pushed=3, dropped=1, failed=0)
    metrics = Metrics()
    metrics.watch(
        cluster=lambda: {"members": 2, "shards": 64, "held": 30, "unowned": 4, "losses": 1},
        push=pushes,
        certificates=lambda: {("ca", "ca"): ca.cert, ("partner", "gone"): tmp_path / "none.pem"},
    )
    found = samples(metrics)
    assert found[("propdev_cluster_members", frozenset())] == 2
    assert found[("propdev_cluster_shards_held", frozenset())] == 30
    assert found[("propdev_cluster_shards_unowned", frozenset())] == 4
    assert found[("propdev_cluster_shard_losses_total", frozenset())] == 1
    assert found[("propdev_cluster_shard_acquisitions_total", frozenset())] == 0
    assert found[("propdev_push_notifications_total", frozenset({("result", "pushed")}))] == 3
    assert found[("propdev_push_notifications_total", frozenset({("result", "dropped")}))] == 1
    expiry = "propdev_certificate_expiry_timestamp_seconds"
    not_after = load_cert(ca.cert).not_valid_after_utc.timestamp()
    assert found[(expiry, frozenset({("kind", "ca"), ("name", "ca")}))] == not_after
    assert not any(name == expiry and ("name", "gone") in labels for name, labels in found)


def test_certificates_the_store_records_are_exported_and_replaced(tmp_path: Path) -> None:
    from propdev.pki import ensure_ca

    ca = ensure_ca(tmp_path)
    metrics = Metrics()
    metrics.watch(certificates=lambda: {("ca", "ca"): ca.cert})
    metrics.record_store_certificates("partner-csr", {"vendor-a": 1_900_000_000.0, "b": 2.0})
    expiry = "propdev_certificate_expiry_timestamp_seconds"
    found = samples(metrics)
    assert found[(expiry, frozenset({("kind", "partner-csr"), ("name", "vendor-a")}))] == 1.9e9
    assert (expiry, frozenset({("kind", "ca"), ("name", "ca")})) in found
    metrics.record_store_certificates("partner-csr", {"b": 3.0})  # vendor-a's was revoked
    found = samples(metrics)
    assert found[(expiry, frozenset({("kind", "partner-csr"), ("name", "b")}))] == 3.0
    assert not any(("name", "vendor-a") in labels for name, labels in found if name == expiry)
