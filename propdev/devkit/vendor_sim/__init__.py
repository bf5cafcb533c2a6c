"""The intercom/barrier vendor simulator: in memory, in-process, or as an HTTPS server."""

from __future__ import annotations

from propdev.partners.simulator.acme import (
    ACME_DEVICES,
    AcmeSimulator,
    acme_control_routes,
    acme_routes,
)
from propdev.partners.simulator.app import control_routes, make_vendor_app, vendor_routes
from propdev.partners.simulator.server import (
    DEFAULT_PORT,
    PartnerSimServer,
    run_partner_sim,
    serve_forever,
)
from propdev.partners.simulator.state import (
    DEFAULT_DEVICES,
    ConnectionDropped,
    FaultMode,
    Faults,
    OpenAnswer,
    VendorError,
    VendorSimulator,
)

__all__ = (
    "ACME_DEVICES",
    "DEFAULT_DEVICES",
    "DEFAULT_PORT",
    "AcmeSimulator",
    "ConnectionDropped",
    "FaultMode",
    "Faults",
    "OpenAnswer",
    "PartnerSimServer",
    "VendorError",
    "VendorSimulator",
    "acme_control_routes",
    "acme_routes",
    "control_routes",
    "make_vendor_app",
    "run_partner_sim",
    "serve_forever",
    "vendor_routes",
)
