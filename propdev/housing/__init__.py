"""The utilities (ЖКХ) gateway: residents' bills and meter readings, proxied to the
housing-and-utilities system (a simulator in-process, or over HTTPS) behind a breaker, a
bulkhead and a timeout; readings validated before they are forwarded, stored and audited."""

from __future__ import annotations

from propdev.utilities.client import HttpUtilitiesClient, InProcessUtilitiesClient, UtilitiesClient
from propdev.utilities.errors import InvalidReadingError, NoAccountError, UtilitiesError
from propdev.utilities.estate import DEMO_ACCOUNTS, DemoAccount, DemoMeter
from propdev.utilities.gateway import UPSTREAM, UtilitiesGateway
from propdev.utilities.meters import (
    KINDS,
    Meter,
    MeterKind,
    MeterType,
    Reading,
    check_progress,
    format_value,
    parse_reading,
)
from propdev.utilities.service import UtilitiesService
from propdev.utilities.sim_server import (
    UtilitiesSimServer,
    run_utilities_sim,
    serve_forever,
    utilities_routes,
)
from propdev.utilities.simulator import UtilitiesFault, UtilitiesSimulator
from propdev.utilities.store import Account, UtilityStore, seed_utilities

__all__ = (
    "DEMO_ACCOUNTS",
    "KINDS",
    "UPSTREAM",
    "Account",
    "DemoAccount",
    "DemoMeter",
    "HttpUtilitiesClient",
    "InProcessUtilitiesClient",
    "InvalidReadingError",
    "Meter",
    "MeterKind",
    "MeterType",
    "NoAccountError",
    "Reading",
    "UtilitiesClient",
    "UtilitiesError",
    "UtilitiesFault",
    "UtilitiesGateway",
    "UtilitiesService",
    "UtilitiesSimServer",
    "UtilitiesSimulator",
    "UtilityStore",
    "check_progress",
    "format_value",
    "parse_reading",
    "run_utilities_sim",
    "seed_utilities",
    "serve_forever",
    "utilities_routes",
)
