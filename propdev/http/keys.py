"""Typed application state: one key per service a route uses, set once by ``make_app``.

A route module reads only the keys it needs, so what it depends on shows in the names it
imports here, and its tests build a bare ``web.Application`` with only those keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from propdev.access import GuestPasses, Opening, Vehicles
    from propdev.accounts import Accounts
    from propdev.actors import ActorSystem
    from propdev.devices import PartnerEventIngest
    from propdev.housing import UtilitiesService
    from propdev.http.client_address import Network
    from propdev.http.services import Devices, Drain, Nodes, Opener, Readiness
    from propdev.http.ws_bindings import BoundSockets
    from propdev.management import Management, PartnerRegistry
    from propdev.observability import Metrics, SloTracker
    from propdev.partners import PartnerGateway
    from propdev.privacy import PersonalData
    from propdev.push import PushPreferences, PushTokens
    from propdev.registry import Bus
    from propdev.staff import Staff
    from propdev.storage import Database
    from propdev.storage.audit import AuditLog
    from propdev.storage.commands import Commands
    from propdev.storage.directory import Directory
    from propdev.storage.events import EventStore

# Configuration the routes show or use.
NODE_ID: web.AppKey[str] = web.AppKey("node_id", str)
"""This node's id (``PROPDEV_NODE_ID``)."""
PUBLIC_URL: web.AppKey[str] = web.AppKey("public_url", str)
"""The base URL clients reach the node at (the OpenAPI document's server)."""
PKI_DIR: web.AppKey[Path] = web.AppKey("pki_dir", Path)
"""The project CA's directory, whose CRL partners' certificates are checked against."""

# Storage.
DATABASE: web.AppKey[Database] = web.AppKey("database")
DIRECTORY: web.AppKey[Directory] = web.AppKey("directory")
"""Sites, access points and who may open them."""
EVENTS: web.AppKey[EventStore] = web.AppKey("events")
"""The residents' events."""
WS_BINDINGS: web.AppKey[BoundSockets] = web.AppKey("ws_bindings")
"""The residents' open WebSockets by their tokens' identity: closed when the token ends."""
COMMANDS: web.AppKey[Commands] = web.AppKey("commands")
"""Open commands and their steps."""
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")
"""The hash-chained audit log."""

# Access logic.
PASSES: web.AppKey[GuestPasses] = web.AppKey("guest_passes")
VEHICLES: web.AppKey[Vehicles] = web.AppKey("vehicles")
PUSH_TOKENS: web.AppKey[PushTokens] = web.AppKey("push_tokens")
PUSH_PREFERENCES: web.AppKey[PushPreferences] = web.AppKey("push_preferences")
"""What each account chose to be pushed beyond its own events (staff: devices offline)."""
OPENING: web.AppKey[Opening] = web.AppKey("opening")
"""The opening pipeline; its keypad lockout and clock show in the console."""

# Actors, devices, the bus and the cluster.
ACTOR_SYSTEM: web.AppKey[ActorSystem] = web.AppKey("actor_system")
"""This node's actors: sessions, the supervision tree and its snapshot, restarts."""
DEVICES: web.AppKey[Devices] = web.AppKey("devices")
"""Device actors where they live (asks forwarded to the owner in a cluster)."""
BUS: web.AppKey[Bus] = web.AppKey("bus")
NODES: web.AppKey[Nodes] = web.AppKey("nodes")
"""The cluster's nodes as this one sees them (one node embedded)."""
READINESS: web.AppKey[Readiness] = web.AppKey("readiness")
DRAIN: web.AppKey[Drain] = web.AppKey("drain")

# Partners.
PARTNER_GATEWAYS: web.AppKey[Mapping[str, PartnerGateway]] = web.AppKey("partner_gateways")
"""Each partner's gateway (its circuit breaker, bulkhead and latencies), by partner id."""
EVENT_INGEST: web.AppKey[PartnerEventIngest] = web.AppKey("event_ingest")
"""Partners' callbacks, applied to their devices."""
WEBHOOK_SECRETS: web.AppKey[Callable[[str], Sequence[str]]] = web.AppKey("webhook_secrets")
"""The secrets a partner may sign its callbacks with now (current, previous), by partner id."""
UTILITIES: web.AppKey[UtilitiesService] = web.AppKey("utilities")
"""The utilities (ЖКХ) gateway: bills, meters, readings."""

# People's own accounts.
ACCOUNTS: web.AppKey[Accounts] = web.AppKey("accounts")
"""Self-service: password change and reset, sessions, activation."""

# Operators' services.
MANAGEMENT: web.AppKey[Management] = web.AppKey("management")
PARTNER_REGISTRY: web.AppKey[PartnerRegistry] = web.AppKey("partner_registry")
"""Partners as data: ``/admin/api/v1/partners``."""
"""Sites, buildings, apartments, access points, residents and rights."""
PRIVACY: web.AppKey[PersonalData] = web.AppKey("privacy")
"""Residents' personal data: export and erasure."""

# Observability.
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
METRICS_ALLOW: web.AppKey[tuple[Network, ...]] = web.AppKey("metrics_allow")
"""Who may scrape ``/metrics`` (``PROPDEV_METRICS_ALLOW``), by client address."""
SLO: web.AppKey[SloTracker] = web.AppKey("slo")

OPENER: web.AppKey[Opener] = web.AppKey("opener")
"""Opens, to the door's device actor wherever it lives (the resident's and the operator's)."""

# Staff.
STAFF: web.AppKey[Staff] = web.AppKey("staff")
"""Staff scopes (enforced by ``propdev.http.scope``) and staff accounts' lifecycle."""
