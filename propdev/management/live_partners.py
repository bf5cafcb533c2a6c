"""The partner registry applied on a running node: every change seen within a second, no restart.

``LivePartners`` keeps the node's gateways (the mapping the device actors call through) in step
with the ``partners`` rows. A change made through ``PartnerRegistry`` on any node is announced
on the bus channel ``partners:<name>``; every node reads that partner again and, when its
version moved, builds a new gateway (``build``: the node knows embedded vendors, gRPC, plug-in
adapters) and swaps it in -- with a fresh breaker, as configured -- and retires the old one
(closed once calls in flight had their time). A deleted partner's gateway is dropped: its
doors answer "no gateway", and its callbacks are refused (``partner_auth`` reads the row).

Pub/sub is best effort, so ``reconcile()`` compares every version with what was applied, every
``RECONCILE_EVERY`` seconds: a node that missed a message catches up by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import structlog

from propdev.config import Settings
from propdev.management.partners import PartnerRecord, PartnerRegistry
from propdev.partners import AdapterSpec, request_signer
from propdev.pki import outbound_context

if TYPE_CHECKING:
    from propdev.partners import PartnerGateway
    from propdev.registry import Bus

CHANNEL = "partners:"
RECONCILE_EVERY = 5.0

log = structlog.get_logger()

Build = Callable[[PartnerRecord], "PartnerGateway | None"]


PARTNER_SIM_PROTOCOLS = ("simulator", "acme")
"""Adapters whose partners may leave ``base_url`` unset: ``PROPDEV_PARTNER_URL`` serves them."""


def partner_url(record: PartnerRecord, settings: Settings) -> str | None:
    """Where the partner's API is: its ``base_url``, else (for the protocols ``partner-sim``
    serves) ``PROPDEV_PARTNER_URL``; None: nowhere over the network (embedded)."""
    if record.base_url:
        return record.base_url
    return settings.partner_url if record.adapter in PARTNER_SIM_PROTOCOLS else None


def adapter_spec(record: PartnerRecord, settings: Settings, url: str) -> AdapterSpec:
    """What the partner's adapter is built from: its URL, its server's CA (or the system
    store), our credential, its timeout and connection cap, our request signer if any."""
    return AdapterSpec(
        partner_id=record.name,
        base_url=url,
        ssl_context=outbound_context(record.server_ca_pem),
        timeout=record.timeout or settings.partner_timeout,
        credential=record.credential,
        max_connections=record.bulkhead or 64,
        signer=request_signer(settings, record.name),
    )


class LivePartners:
    def __init__(
        self,
        registry: PartnerRegistry,
        gateways: MutableMapping[str, PartnerGateway],
        build: Build,
        *,
        retire_after: float,
        clock: Callable[[], float] = time.time,
        before_reconcile: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._before_reconcile = before_reconcile
        self.registry = registry
        self.gateways = gateways
        self._build = build
        self._retire_after = retire_after
        self._clock = clock
        self.records: dict[str, PartnerRecord] = {}
        self._applied: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._bus: Bus | None = None
        self._stopped = False  # after stop(), what the bus still brings is not applied

    def subscribe(self, bus: Bus) -> None:
        """Hear changes; ``announce`` then publishes them to every node (this one included)."""
        self._bus = bus
        bus.subscribe(CHANNEL, self._heard)

    async def announce(self, name: str) -> None:
        """Apply the change here before the caller answers, then tell the other nodes."""
        await self.apply(name)
        if self._bus is not None:
            await self._bus.publish(CHANNEL + name, {"name": name})

    async def _heard(self, channel: str, message: dict[str, Any]) -> None:
        """Applied in a task of its own: reading the store must not hold up the bus's
        listener (and the revocations behind it)."""
        name = message.get("name")
        if isinstance(name, str) and not self._stopped:
            task = asyncio.create_task(self._apply_heard(name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _apply_heard(self, name: str) -> None:
        try:
            await self.apply(name)
        except Exception:  # the store may be down: the reconcile loop catches up
            log.exception("partner_apply_failed", partner=name)

    def webhook_secrets(self, partner_id: str) -> list[str]:
        """The secrets ``partner_id``'s webhooks may be signed with now (empty: not in the
        registry, or deleted)."""
        record = self.records.get(partner_id)
        return record.secrets_at(self._clock()) if record is not None else []

    async def apply(self, name: str) -> None:
        """Read partner ``name`` again and make this node's gateway match it."""
        async with self._lock:
            record = await self.registry.load(name)
            if record is None:
                self.records.pop(name, None)
                self._applied.pop(name, None)
                old = self.gateways.pop(name, None)
                if old is not None:
                    self._retire(old)
                    log.info("partner_removed", partner=name)
                return
            self.records[name] = record
            if self._applied.get(name) == record.version and name in self.gateways:
                return
            gateway = self._build(record)
            self._applied[name] = record.version
            old = self.gateways.pop(name, None)
            if gateway is not None:
                self.gateways[name] = gateway
            if old is not None and old is not gateway:
                self._retire(old)
            log.info(
                "partner_applied", partner=name, version=record.version, gateway=gateway is not None
            )

    async def reconcile(self) -> None:
        """Apply every partner whose version differs from the applied one, and drop the
        gateways of partners no longer registered."""
        if self._before_reconcile is not None:
            await self._before_reconcile()  # e.g. adopt partners a file-based tool registered
        versions = await self.registry.versions()
        for name, version in versions.items():
            if self._applied.get(name) != version:
                await self.apply(name)
        for name in [n for n in self.records if n not in versions]:
            await self.apply(name)

    def start(self, every: float = RECONCILE_EVERY) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(every)
                try:
                    await self.reconcile()
                except Exception:  # the store may be down for a while: try again next time
                    log.exception("partner_reconcile_failed")

        self._loop = asyncio.create_task(loop())

    def _retire(self, gateway: PartnerGateway) -> None:
        async def close_later() -> None:
            try:
                await asyncio.sleep(self._retire_after)  # calls in flight end or time out
            finally:
                await gateway.close()

        task = asyncio.create_task(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def stop(self) -> None:
        """Cancel the reconcile loop and the applies in flight, close retiring gateways; a
        change heard afterwards is not applied (the node is closing its store next)."""
        self._stopped = True
        tasks = [t for t in (self._loop, *self._tasks, *self._retiring) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
