"""Node: wires settings -> store -> bus -> partners -> actor system -> security -> HTTP.

``Node.start()`` / ``Node.stop()`` bracket its life; ``serve(settings)`` runs one over HTTPS
until cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import gc
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from propdev.access import (
    AccessServices,
    KeypadPolicy,
    OpenOutcome,
    Reason,
    RedisKeypadLockout,
    failed,
    unanswered_open,
)
from propdev.accounts import Accounts, OutboxNotifier, ResetRequests
from propdev.actors import ActorStoppedError, ActorSystem, AskTimeout
from propdev.actors.device import DeviceActor, DeviceDeps
from propdev.actors.messages import (
    CommandResult,
    Deliver,
    DeviceEvent,
    DeviceSnapshot,
    OpenAccessPoint,
    SessionPresence,
)
from propdev.actors.session import SessionActor
from propdev.config import Settings
from propdev.devices import PartnerEventIngest, presence_of
from propdev.grpc import ADAPTER as GRPC_ADAPTER
from propdev.grpc import ClusterCommands, CommandStreams, build_grpc_gateway
from propdev.housing import InProcessUtilities, UtilitiesService
from propdev.http.ratelimit import Limiter, RedisLimiter
from propdev.http.ws_bindings import BoundSockets
from propdev.integrity import Checkpointer, signer_for
from propdev.management import (
    LivePartners,
    PartnerRecord,
    PartnerRegistry,
    adapter_spec,
    partner_url,
)
from propdev.observability import RedisSlo, Telemetry
from propdev.partners import (
    SIMULATOR_PARTNER_ID,
    AcmeAdapter,
    AcmeInProcessClient,
    Adapters,
    ApiKey,
    Confirmation,
    ConfirmsByCallback,
    InProcessAdapter,
    PartnerAdapter,
    PartnerGateway,
    RedisCircuits,
    UnknownAdapterError,
    build_gateway,
    vendor_api_key,
    webhook_secret,
)
from propdev.pki import ca_paths, ensure_ca, ensure_server_cert, partner_paths
from propdev.privacy import DailyRetention, policy_of
from propdev.push import providers_from
from propdev.registry import (
    SHARDS,
    Bus,
    Cluster,
    ClusterUnavailableError,
    InProcessBus,
    Revocations,
    honour_revocations,
)
from propdev.security import (
    ExternalVerifier,
    OAuthServer,
    SigningKeys,
    SignInThrottle,
    TokenIssuer,
    TokenVerifier,
    register_web_app_client,
)
from propdev.security.crypto import open_vault
from propdev.security.personal import seal_clear_rows
from propdev.storage import Database, migrate
from propdev.storage.audit import AuditLog
from propdev.storage.commands import Commands
from propdev.storage.directory import Directory
from propdev.storage.events import EventStore

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from propdev.devkit import AcmeSimulator, VendorSimulator
    from propdev.grpc import GrpcServer
    from propdev.http.server import HttpsListener, RouteDefs

log = structlog.get_logger()

# Failed outcomes the node (or its cluster) gives itself, never a device actor: audited here.
_ANSWERED_HERE = frozenset(
    {Reason.NODE_DRAINING, Reason.DEVICE_TIMEOUT, Reason.CLUSTER_UNAVAILABLE}
)

# An open waits for the vendor (bounded by the partner timeout) plus the commit.
ASK_MARGIN = 2.0


def simulator_control(settings: Settings) -> tuple[bool, str]:
    """Whether the in-process simulator's control API is served on the node's listener, and
    why: only in embedded demo mode (no ``PROPDEV_PARTNER_URL``) and only on a loopback
    listener (127.0.0.0/8, ::1, localhost), since anyone who reaches it can take devices
    offline and inject faults."""
    if not settings.embedded_partner:
        return False, "partner_url_set"
    if not is_loopback(settings.host):
        return False, "listener_not_loopback"
    return True, "embedded_on_loopback"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and for addresses in 127.0.0.0/8 or ``::1``; not for a wildcard
    (``0.0.0.0``, ``::``, empty), a name or another address."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _embedded_vendors(
    settings: Settings,
) -> tuple[VendorSimulator | None, AcmeSimulator | None]:
    """The in-process vendors of embedded demo mode; none when ``PROPDEV_PARTNER_URL`` is set."""
    if not settings.embedded_partner:
        return None, None
    from propdev.devkit import AcmeSimulator, VendorSimulator  # the dev kit: demo mode only

    return VendorSimulator(), AcmeSimulator()


def _embedded_utilities(settings: Settings) -> InProcessUtilities | None:
    """The in-process housing-and-utilities system; none when ``PROPDEV_UTILITIES_URL`` is set."""
    if settings.utilities_url is not None:
        return None
    from propdev.devkit import UtilitiesSimulator  # the dev kit: demo mode only

    return UtilitiesSimulator()


class Node:
    """One propdev node and everything it owns."""

    def __init__(self, settings: Settings, *, span_exporter: SpanExporter | None = None) -> None:
        self.settings = settings
        self.clock: Callable[[], float] = time.time  # epoch seconds; set_clock() for tests
        self.telemetry = Telemetry.from_settings(settings, span_exporter=span_exporter)
        self.db = Database(settings.database_url)
        self.directory = Directory(self.db)
        self.events = EventStore(self.db)
        # Residents' WebSockets by their tokens: closed (4401) at expiry or on a revocation.
        self.ws_bindings = BoundSockets(clock=lambda: self.now())
        self.audit = AuditLog(self.db)
        self.commands = Commands(self.db)
        # Signed checkpoints over the audit chains; the key file is read at each checkpoint.
        self.checkpointer = Checkpointer(
            self.db,
            functools.partial(signer_for, settings.data_dir),
            interval=settings.audit_checkpoint_seconds,
            clock=lambda: self.now(),
            node_id=settings.node_id,
        )
        self.bus: Bus = InProcessBus()
        # Embedded demo mode (no PROPDEV_PARTNER_URL): the vendors are simulated in-process.
        self.simulator, self.acme_simulator = _embedded_vendors(settings)
        self.gateways: dict[str, PartnerGateway] = {}
        self.command_streams = CommandStreams()  # partners' gRPC Commands calls
        self._webhook_secrets: dict[str, str] = {}
        # Partners as data: plug-in adapters, the registry, its changes applied live.
        self.adapters = Adapters.discover()
        self.live_partners: LivePartners | None = None
        self.partners = PartnerRegistry(
            self.db,
            adapters=lambda: [*self.adapters.names(), GRPC_ADAPTER],
            pki_dir=settings.pki_dir,
            announce=self._announce_partner,
            certificate_days=settings.partner_cert_days,
            clock=self.now,
        )
        self.system = ActorSystem(
            node_id=settings.node_id,
            idle_timeout=settings.actor_idle_timeout,
            ask_timeout=settings.ask_timeout,
        )
        # With Redis, the node is one of a cluster (propdev.registry.cluster); else embedded.
        self.cluster = Cluster(settings, self.system, self.db) if settings.clustered else None
        if self.cluster is not None:
            self.bus = self.cluster.bus
            # gRPC commands go to the node holding the partner's stream, and vendors'
            # command results to the device's owner, where the open waits for them.
            ClusterCommands(self.cluster, self.command_streams).install()
            self.cluster.handle(CommandResult, self._confirm_here)
        # In a cluster, rate limits are one budget on the cluster's Redis (local if it fails).
        self.rate_limiter: Limiter | None = (
            RedisLimiter(self.cluster.redis, prefix="{" + settings.redis_prefix + "}:rl:")
            if self.cluster is not None
            else None
        )
        # In a cluster, partners' circuits open once for the cluster (local if Redis fails).
        self.circuits = (
            RedisCircuits(self.cluster.redis, prefix=f"{self.cluster.namespace}:", bus=self.bus)
            if self.cluster is not None
            else None
        )
        # In a cluster, the SLO report is the cluster's: counts added up in Redis.
        self.shared_slo = (
            RedisSlo(self.telemetry.slo, self.cluster.redis, prefix=f"{self.cluster.namespace}:")
            if self.cluster is not None
            else None
        )
        self.keys = SigningKeys.load_or_create(settings.pki_dir / "jwt")
        self.issuer = TokenIssuer(settings, self.keys)
        self.verifier = TokenVerifier(settings, self.keys)
        # A corporate OIDC provider as a second trusted issuer (propdev.security.external).
        self.external_verifier = ExternalVerifier.from_settings(settings)
        self.oauth = OAuthServer(
            settings, self.db, self.issuer, self.verifier, throttle=self._sign_in_throttle()
        )
        # Residents' self-service: password change and reset, sessions, activation.
        self.accounts = Accounts(
            self.db,
            notifier=OutboxNotifier(settings.data_dir / "outbox.jsonl"),
            throttle=self.oauth.throttle,
            requests=self._reset_requests(),
            token_ttl=settings.access_token_ttl,
            reset_ttl=settings.reset_code_ttl,
        )
        keypad = KeypadPolicy(
            settings.keypad_attempts, settings.keypad_window, settings.keypad_cooldown
        )
        self.access = AccessServices.for_data_dir(
            self.db,
            self.bus,
            settings.data_dir,
            presence=self.live_sockets,
            keypad=keypad,
            on_keypad=self.telemetry.keypad_event,
            providers=providers_from(settings),
            node_id=settings.node_id,
            breaker_failures=settings.breaker_failures,
            breaker_reset=settings.breaker_reset,
            # In a cluster, lockouts outlive a device's change of owner (local if Redis fails).
            lockout=RedisKeypadLockout(
                self.cluster.redis,
                prefix=f"{self.cluster.namespace}:",
                policy=keypad,
                on_event=self.telemetry.keypad_event,
            )
            if self.cluster is not None
            else None,
        )
        self.utilities = UtilitiesService.from_settings(
            settings,
            self.db,
            in_process=_embedded_utilities(settings),
            on_state_change=self.telemetry.breaker_changed,
            observe=self.telemetry.partner_call,
        )
        self.ingest = PartnerEventIngest(
            db=self.db,
            confirm=self._route_confirmation,
            ask_timeout=settings.ask_timeout,
            ask=self.ask_device,  # partner events go to the device's owner (in a cluster)
            clock=self.now,
        )
        # Retention once a day, as of the node's clock (one run per day for the whole store).
        self.retention = DailyRetention(
            self.db, policy_of(settings), node_id=settings.node_id, clock=self.now
        )
        self._key_watch: asyncio.Task[None] | None = None  # rotated signing keys, retirements
        self.started = False
        self.draining = False  # drain(): no new device work, /readyz false
        self.stopping = False  # serve() is stopping: /readyz false while requests finish
        self._drain_lock = asyncio.Lock()
        self.grpc_port: int | None = None  # bound by serve() when PROPDEV_GRPC_PORT is set

    def now(self) -> float:
        """The node's time (epoch seconds): its rules, partner events and devices read it."""
        return self.clock()

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Make the node read ``clock`` (tests move time with it): the access rules, the
        partner events' validation (``occurred_at`` is judged against it) and the devices."""
        self.clock = clock
        self.access.set_clock(clock)
        self.accounts.clock = clock

    def _reset_requests(self) -> ResetRequests:
        """Password-reset requests counted per address and account: in the cluster's Redis,
        or in this process when embedded."""
        per_address = self.settings.auth_failures_per_ip
        if self.cluster is None:
            return ResetRequests.local(per_address)
        return ResetRequests.shared(
            self.cluster.redis, prefix=f"{self.cluster.namespace}:reset:", per_address=per_address
        )

    def cluster_view(self) -> dict[str, int]:
        """The cluster as this node sees it, for the metrics (embedded: alone, every shard)."""
        if self.cluster is None:
            return {"members": 1, "shards": SHARDS, "held": SHARDS, "unowned": 0}
        placement = self.cluster.placement.snapshot()
        owners = placement["owners"]
        return {
            "members": len(self.cluster.membership.members()),
            "shards": int(placement["shards"]),
            "held": len(placement["held"]),
            "unowned": sum(1 for owner in owners.values() if owner is None),
            "acquisitions": int(placement["acquisitions"]),
            "losses": int(placement["losses"]),
        }

    def certificate_files(self) -> dict[tuple[str, str], Path]:
        """The certificates whose expiry the metrics export: the CA, the server's, partners'."""
        pki = self.settings.pki_dir
        files = {
            ("ca", "ca"): ca_paths(pki).cert,
            ("server", "server"): pki / "server" / "cert.pem",
        }
        partners = pki / "partners"
        if partners.is_dir():
            for entry in sorted(partners.iterdir()):
                files[("partner", entry.name)] = partner_paths(pki, entry.name).cert
        return files

    def _sign_in_throttle(self) -> SignInThrottle | None:
        """In a cluster, failed logins and token requests are counted in the cluster's Redis
        (per account, pair and address, whichever node they hit); embedded, in this process."""
        if self.cluster is None:
            return None
        return SignInThrottle.shared(
            self.cluster.redis,
            prefix=f"{self.cluster.namespace}:auth:",
            per_address=self.settings.auth_failures_per_ip,
        )

    def simulator_routes(self) -> RouteDefs:
        """The in-process simulators' control API (``/sim/v1``, ``/sim/acme/v1``; no
        authentication) for the node's listener, or none: see ``simulator_control``. Logs
        ``simulator_control_api`` with the decision and its reason."""
        mounted, reason = simulator_control(self.settings)
        if not mounted or self.simulator is None:
            log.info("simulator_control_api", mounted=False, reason=reason, host=self.settings.host)
            return []
        from propdev.devkit import acme_control_routes, control_routes  # embedded demo mode

        log.warning(
            "simulator_control_api",
            mounted=True,
            reason=reason,
            host=self.settings.host,
            note="development tool without authentication: /sim/ changes devices and faults",
        )
        acme = acme_control_routes(self.acme_simulator) if self.acme_simulator else []
        return [*control_routes(self.simulator), *acme]

    def webhook_secrets(self, partner_id: str) -> list[str]:
        """The secrets ``partner_id`` may sign its callbacks with now: the registry's current
        one and, for a day after a rotation, the previous one. A partner the registry has not
        adopted yet (registered by a file-based tool while the node runs) still has the secret
        shared through the data dir."""
        if self.live_partners is not None:
            secrets = self.live_partners.webhook_secrets(partner_id)
            if secrets:
                return secrets
        secret = self._webhook_secrets.get(partner_id)
        if secret is None:
            secret = webhook_secret(self.settings.data_dir, partner_id)
            self._webhook_secrets[partner_id] = secret
        return [secret]

    async def _announce_partner(self, name: str) -> None:
        if self.live_partners is not None:
            await self.live_partners.announce(name)

    def _confirm(self, event: DeviceEvent) -> bool:
        """A vendor's ``command_result``: to the adapter whose open waits for it."""
        gateway = self.gateways.get(event.partner_id)
        adapter = gateway.adapter if gateway is not None else None
        if not isinstance(adapter, ConfirmsByCallback) or event.vendor_command_id is None:
            return False
        at = dt.datetime.fromtimestamp(event.occurred_at, dt.UTC)
        ok = event.result == "done"
        return adapter.confirm(Confirmation(event.vendor_command_id, ok, event.error, at))

    async def _route_confirmation(self, access_point_id: str, event: DeviceEvent) -> bool:
        """A ``command_result`` to the node whose open waits for it: in a cluster the
        device's owner (beside its actor, which the open holds), else this one."""
        if self.cluster is None:
            return self._confirm(event)
        message = CommandResult(event)
        taken = await self.cluster.ask(
            f"device:{access_point_id}", message, self.settings.ask_timeout
        )
        return taken is True

    async def _confirm_here(self, target: str, message: object) -> object:
        assert isinstance(message, CommandResult)
        return self._confirm(message.event)

    def _partner_gateway(self, record: PartnerRecord) -> PartnerGateway | None:
        """The gateway for a registered partner, with its own breaker, bulkhead and rate limit
        (the node's settings where the registry leaves them unset); None when this node cannot
        reach it (an adapter it does not have, no URL and no embedded vendor of its kind)."""
        settings, name = self.settings, record.name
        changed, observe = self.telemetry.breaker_changed, self.telemetry.partner_call
        if record.adapter == GRPC_ADAPTER:  # the vendor calls us: its gateway is the stream
            streamed = build_grpc_gateway(
                settings, name, self.command_streams, on_state_change=changed, observe=observe
            )
            if self.circuits is not None:
                streamed.share(self.circuits)
            return streamed
        adapter: PartnerAdapter | None = None
        url = partner_url(record, settings)
        timeout = record.timeout or settings.partner_timeout
        if url is None:
            if record.adapter == "simulator" and name == SIMULATOR_PARTNER_ID and self.simulator:
                adapter = InProcessAdapter(self.simulator, name)
            elif record.adapter == "acme" and self.acme_simulator is not None:
                adapter = AcmeAdapter(name, AcmeInProcessClient(self.acme_simulator))
        else:
            try:
                adapter = self.adapters.build(record.adapter, adapter_spec(record, settings, url))
            except UnknownAdapterError as exc:
                log.warning("partner_adapter_unknown", partner=name, error=str(exc))
        if adapter is None:
            log.info("partner_without_gateway", partner=name, adapter=record.adapter)
            return None
        gateway = PartnerGateway(
            adapter,
            timeout=timeout,
            breaker_failures=record.breaker_failures or settings.breaker_failures,
            breaker_reset=record.breaker_reset or settings.breaker_reset,
            max_in_flight=record.bulkhead or 64,
            rate_limit=record.rate_limit,
            on_state_change=changed,
            observe=observe,
        )
        if self.circuits is not None:  # built at start or after a change: the cluster's circuit
            gateway.share(self.circuits)
        return gateway

    async def _adopt_file_partners(self) -> None:
        """Partners registered before the registry (``seed-demo``, ``pki issue-partner``) take
        their secrets from the data dir into the store, once: the webhook secret, and for the
        vendors ``partner-sim`` plays, its API key and the project CA as their server's CA."""
        unadopted = await self.partners.unadopted()
        if not unadopted:
            return
        ca_pem = ca_paths(self.settings.pki_dir).cert.read_text()
        for name, adapter in unadopted:
            simulated = adapter in self.adapters and adapter in ("simulator", "vendor", "acme")
            await self.partners.adopt(
                name,
                webhook_secret=webhook_secret(self.settings.data_dir, name),
                credential=ApiKey(vendor_api_key(self.settings.data_dir, name))
                if simulated
                else None,
                server_ca_pem=ca_pem if simulated else None,
            )
            log.info("partner_adopted", partner=name)

    async def _partner_gateways(self) -> None:
        """A gateway for each registered partner, kept in step with the registry on every
        node (``LivePartners``), and the embedded simulators' callbacks straight into the
        ingest."""
        live = LivePartners(
            self.partners,
            self.gateways,
            self._partner_gateway,
            retire_after=self.settings.partner_timeout + 1.0,
            clock=self.now,
            before_reconcile=self._adopt_file_partners,  # `pki issue-partner` while running
        )
        live.subscribe(self.bus)
        self.live_partners = live
        await live.reconcile()
        live.start()
        embedded = (("simulator", self.simulator), ("acme", self.acme_simulator))
        for partner_id, sim in embedded:
            if sim is not None:
                sim.callback = functools.partial(self._embedded_callback, partner_id)

    async def _embedded_callback(self, partner_id: str, event: dict[str, Any]) -> None:
        await self.ingest.ingest(partner_id, [event])

    async def start(self) -> None:
        await migrate(self.db)
        await seal_clear_rows(self.db, await open_vault(self.settings, self.db))
        await register_web_app_client(self.db, self.settings.public_url)  # /app/'s client
        await self._partner_gateways()
        if (
            SIMULATOR_PARTNER_ID not in self.gateways
            and await self.partners.load(SIMULATOR_PARTNER_ID) is None
        ):  # a store without the demo partner: the simulator as before the registry
            gateway = build_gateway(
                self.settings,
                self.simulator,
                on_state_change=self.telemetry.breaker_changed,
                observe=self.telemetry.partner_call,
            )
            self.gateways[gateway.partner_id] = gateway
        if self.circuits is not None:
            for partner_gateway in self.gateways.values():
                partner_gateway.share(self.circuits)
            self.utilities.gateway.share(self.circuits)  # the ЖКХ upstream's circuit too
            self.circuits.start()
        if self.shared_slo is not None:
            self.shared_slo.start()
        deps = DeviceDeps(
            db=self.db,
            directory=self.directory,
            gateways=self.gateways,
            bus=self.bus,
            heartbeat=self.settings.device_heartbeat,
            clock=self.now,
            guard=self.cluster.guard if self.cluster is not None else None,
            opening=self.access.opening,
        )
        deps.tracing = self.telemetry.tracing
        self.telemetry.watch(
            system=self.system,
            gateways=self.gateways,
            bus=self.bus,
            cluster=self.cluster_view,
            push=self.access.sender,
            certificates=self.certificate_files,
        )
        self.system.register_kind("device", lambda address: DeviceActor(deps))
        self.system.register_kind("session", lambda address: SessionActor())
        self.bus.subscribe("user:", self._to_session)
        self.access.subscribe(self.bus)  # push notifications when no socket is live
        self.access.start()
        await self.system.start()
        # Revoked access tokens (RFC 7009), subjects and certificates: refused by every node.
        revocations = self.cluster.revocations if self.cluster else Revocations(self.bus)
        honour_revocations(self.verifier, revocations)
        self.ws_bindings.listen_to(revocations)
        self.oauth.on_access_revoked = revocations.revoke_access_token
        self.oauth.on_grant_revoked = self._grant_revoked(revocations.revoke_grant)
        self.accounts.on_grant_revoked = self._grant_revoked(revocations.revoke_grant)
        if self.cluster is not None:
            await self.cluster.start()
        self.retention.start()
        self._key_watch = asyncio.create_task(self.keys.watch())  # `keys rotate-signing`
        self.checkpointer.start()
        self.started = True
        log.info("node_started", public_url=self.settings.public_url)

    def _grant_revoked(
        self, revoke: Callable[[str, float], Awaitable[None]]
    ) -> Callable[[str, float], Awaitable[None]]:
        """A logout (a revoked grant) also forgets the push tokens registered under it."""

        async def revoked(sid: str, until: float) -> None:
            await revoke(sid, until)
            await self.access.push_tokens.forget_login(sid)

        return revoked

    async def stop(self) -> None:
        """Stop, after the HTTP listener (``serve`` stops that first: no request is still being
        served here). In a cluster: drain (hand the shards off, each once its work in flight
        is done, while forwarded asks are still served or answered ``MOVED``), stop reading the
        inbox without leaving an ask in it unanswered, and leave the membership; then the
        actors (their state saved) and the rest."""
        self.started = False
        self.stopping = True
        await self.retention.stop()
        self.ws_bindings.stop()
        if self._key_watch is not None:
            self._key_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._key_watch
        if self.cluster is not None:
            await self.drain()  # hand shards off before the actors stop
            await self.cluster.leave()
        await self.system.stop()
        await self.accounts.settle()  # codes being sent
        await self.checkpointer.stop()  # a last checkpoint over what the actors wrote
        await self.access.stop()
        if self.circuits is not None:
            await self.circuits.close()
        if self.shared_slo is not None:
            await self.shared_slo.close()
        if self.live_partners is not None:
            await self.live_partners.stop()
        for gateway in self.gateways.values():
            await gateway.close()
        await self.utilities.close()
        if self.external_verifier is not None:
            await self.external_verifier.close()
        if self.simulator is not None:
            await self.simulator.close()
        if self.acme_simulator is not None:
            await self.acme_simulator.close()
        await self.bus.close()
        if self.cluster is not None:
            await self.cluster.close()
        await self.db.close()
        await self.telemetry.shutdown()

    async def drain(self) -> dict[str, Any]:
        """Stop taking device work here (idempotent), ``/readyz`` turns false. In a cluster
        the node announces ``draining`` and hands its shards off (``Cluster.drain``) but stays
        a member, still answering forwarded asks (``MOVED``) and forwarding its own opens to
        the new owners; embedded, opens answer 503, asks for devices are refused and the
        device actors are passivated (their state saved)."""
        async with self._drain_lock:
            first = not self.draining
            self.draining = True
            shards = 0
            passivated = 0
            if first:
                if self.cluster is not None:
                    shards = len(self.cluster.placement.held())
                    await self.cluster.drain()
                else:
                    with contextlib.suppress(ActorStoppedError):
                        passivated = await self.system.passivate_matching(
                            lambda address: address.kind == "device"
                        )
                log.warning("node_draining", shards=shards, passivated=passivated)
            return {
                "node_id": self.settings.node_id,
                "draining": True,
                "already": not first,
                "shards_handed_off": shards,
                "actors_passivated": passivated,
            }

    async def _to_session(self, channel: str, message: dict[str, Any]) -> None:
        address = "session:" + channel.removeprefix("user:")
        if self.system.is_active(address):
            self.system.tell(address, Deliver(message))

    async def live_sockets(self, user_id: str) -> int:
        """How many WebSockets of ``user_id`` this node holds; if none, how many nodes of the
        cluster hold some (they listen to the resident's channel)."""
        address = f"session:{user_id}"
        if self.system.is_active(address):
            here = int(await self.system.ask(address, SessionPresence()))
            if here:
                return here
        return await self.bus.audience(f"user:{user_id}")

    async def ask_device(
        self,
        target: str,
        message: object,
        timeout: float | None = None,  # noqa: ASYNC109 - the ask's deadline
    ) -> object:
        """Ask a device actor where it lives: in a cluster, on its shard's owner (a local ask
        when this node holds the shard, forwarded otherwise), so that no other node activates
        it; embedded, here."""
        timeout = self.settings.ask_timeout if timeout is None else timeout
        if self.draining and self.cluster is None and not isinstance(message, DeviceSnapshot):
            # New work (partner events) is refused while draining; a read still answers.
            raise ClusterUnavailableError(f"node {self.settings.node_id} is draining")
        if self.cluster is not None:
            return await self.cluster.ask(target, message, timeout)
        return await self.system.ask(target, message, timeout=timeout)

    async def open(self, message: OpenAccessPoint) -> OpenOutcome:
        """Ask the door's device actor to open; a slow actor is a 504, not a hang. An open
        this node answers itself as failed (draining, the actor or the cluster unreachable or
        too slow) is audited here: the door's pipeline never saw it, or not in time."""
        outcome = await self._open(message)
        if outcome.reason in _ANSWERED_HERE:
            await self._audit_unanswered(message, outcome)
        return outcome

    async def _open(self, message: OpenAccessPoint) -> OpenOutcome:
        timeout = self.settings.partner_timeout + ASK_MARGIN
        if self.draining and self.cluster is None:  # a cluster's drained node forwards opens
            return failed(message.access_point_id, Reason.NODE_DRAINING, retry_after=1.0)
        if self.cluster is not None:
            return await self.cluster.open(message, timeout)  # its own failures: _ANSWERED_HERE
        try:
            outcome = await self.system.ask(
                f"device:{message.access_point_id}", message, timeout=timeout
            )
        except AskTimeout:
            return failed(message.access_point_id, Reason.DEVICE_TIMEOUT)
        assert isinstance(outcome, OpenOutcome)
        return outcome

    async def _audit_unanswered(self, message: OpenAccessPoint, outcome: OpenOutcome) -> None:
        """The ``failed`` entry of an open answered here. Nothing opened whatever happens to
        the entry, so a store that cannot take it leaves the answer as it is (and says so in
        the log)."""
        record = unanswered_open(
            at=self.now(),
            access_point_id=message.access_point_id,
            user_id=message.user_id,
            reason=outcome.reason,
            on_behalf=message.on_behalf,
            note=message.note,
        )
        try:
            await self.audit.append(record)
        except Exception:  # the store is down too: the answer is still "failed"
            log.exception(
                "audit_append_failed", action=record.action, access_point_id=record.access_point_id
            )

    async def device_online(self, access_point_ids: Sequence[str]) -> dict[str, bool | None]:
        """Each access point's ``online``: True, False or None (unknown); see device_presence."""
        found = await self.device_presence(access_point_ids)
        return {ap_id: found[ap_id]["online"] for ap_id in access_point_ids}

    async def device_presence(self, access_point_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each access point's ``online``, ``state`` and ``last_seen_age_s`` now: from its actor
        if active, else from its stored state (a silent device turns unknown either way)."""
        found: dict[str, dict[str, Any]] = {}
        rows = (
            await self.db.fetch_all("SELECT access_point_id, state FROM device_state")
            if access_point_ids
            else []
        )
        stored = {r["access_point_id"]: json.loads(r["state"]) for r in rows}
        now, heartbeat = self.now(), self.settings.device_heartbeat
        for ap_id in access_point_ids:
            address = f"device:{ap_id}"
            if self.system.is_active(address):
                state = await self.system.ask(address, DeviceSnapshot())
            else:
                state = stored.get(ap_id, {})
            found[ap_id] = presence_of(state, now=now, heartbeat=heartbeat).as_dict()
        return found

    async def readiness(self) -> dict[str, bool]:
        return {
            "store": await self.db.ping(),
            "bus": await self.bus.ping(),
            "registry": self.started,
            "actors": self.started and not self.system.failed,
            "accepting": not self.draining and not self.stopping,
            **(await self.cluster.readiness() if self.cluster is not None else {}),
        }


async def serve(
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    span_exporter: SpanExporter | None = None,
    on_node: Callable[[Node], None] | None = None,
    whole_process: bool = False,
) -> None:
    """Run one node over HTTPS until cancelled (``span_exporter``: tests' in-memory spans;
    ``on_node``: tests get the node before it starts, e.g. to inject a clock;
    ``whole_process``: the node owns its process, ``run.py serve``: ``settle_heap`` once it
    listens)."""
    from propdev.http.app import make_app
    from propdev.http.server import HttpsListener

    ensure_ca(settings.pki_dir)
    server_cert = ensure_server_cert(settings.pki_dir, _hosts(settings))
    node = Node(settings, span_exporter=span_exporter)
    if on_node is not None:
        on_node(node)
    await node.start()
    listener = HttpsListener(make_app(node), settings, server_cert)
    grpc_server: GrpcServer | None = None
    try:
        await listener.start()
        if settings.grpc_port is not None and settings.gateway:  # partners' gRPC, if configured
            from propdev.grpc import start_grpc_server  # imports grpc: only when configured

            grpc_server = await start_grpc_server(
                node, server_cert, host=settings.host, port=settings.grpc_port
            )
            node.grpc_port = grpc_server.port
        listener.install_sighup()  # certificate and CRL rotation without downtime
        if whole_process:
            settle_heap()
        log.info("listening", url=f"https://{settings.host}:{settings.port}")
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        # SIGTERM/SIGINT. The shutdown below runs as ordinary code, not as a task being
        # cancelled: its bounded waits (aiohttp's for the requests in flight among them) end
        # when their time is up, not at once. The cancellation goes on afterwards.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        raise
    finally:
        await _shut_down(node, listener, grpc_server)


# The cyclic collector's thresholds while serving (CPython's defaults: 700, 10, 10).
GC_THRESHOLDS = (20_000, 20, 10)


def settle_heap() -> None:
    """Tune the cyclic garbage collector for serving, once start-up is done.

    Start-up leaves ~170,000 long-lived objects (modules, routes, the OpenAPI document,
    settings, certificates): they are frozen (``gc.freeze``), so that a full collection no
    longer walks them all again (~70 ms each, in the middle of requests). Frozen objects are
    never freed, so start-up's garbage is collected first. And the youngest generation is
    collected every 20,000 net allocations instead of 700: at 700, the objects of the
    requests in flight (64 opens' frames, futures, dicts) were found alive and promoted over
    and over, and collected again in the older generations. Together about 7 % of the CPU of
    a door open (docs/benchmarks/profile-notes.md). For a process that is only a node: it
    changes the whole interpreter, and frozen objects stay (``serve(whole_process=True)``).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _shut_down(node: Node, listener: HttpsListener, grpc_server: GrpcServer | None) -> None:
    """Stop a serving node without failing a request, here or at the other nodes:

    1. ``/readyz`` answers 503 (on connections still open), the listening socket is closed and
       a connection still in its TLS handshake is refused when it completes: a client, or a
       load balancer, tries another node.
    2. The requests in flight finish (bounded by ``HttpsListener.SHUTDOWN_WITHIN``); WebSockets
       are closed with 1012 "service restart" first.
    3. ``Node.stop``: in a cluster, the shards are handed off while the inbox is served (each
       released once its work in flight is done; an ask for a released one answered ``MOVED``,
       and the asker re-routes), the inbox is read to its end, the node leaves the membership;
       then the actors stop.

    A failure of one step is logged and the next still runs; the first one is raised at the
    end (the process exits non-zero)."""
    node.stopping = True
    failure: BaseException | None = None
    if grpc_server is not None:
        try:
            await grpc_server.stop()
        except Exception as exc:
            log.exception("grpc_stop_failed")
            failure = exc
    try:
        await listener.stop()
    except Exception as exc:
        log.exception("http_stop_failed")
        failure = failure or exc
    await node.stop()
    if failure is not None:
        raise failure


def _hosts(settings: Settings) -> tuple[str, ...]:
    hosts = ["127.0.0.1", "localhost"]
    for host in (settings.host, _url_host(settings.public_url)):
        if host and host not in hosts and host not in ("0.0.0.0", "::"):
            hosts.append(host)
    return tuple(hosts)


def _url_host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""
