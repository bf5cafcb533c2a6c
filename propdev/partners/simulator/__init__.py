"""The intercom/barrier vendor simulator: in memory, in-process, or as an HTTPS server."""

from __future__ import annotations

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
    "DEFAULT_DEVICES",
    "DEFAULT_PORT",
    "ConnectionDropped",
    "FaultMode",
    "Faults",
    "OpenAnswer",
    "PartnerSimServer",
    "VendorError",
    "VendorSimulator",
    "control_routes",
    "make_vendor_app",
    "run_partner_sim",
    "serve_forever",
    "vendor_routes",
)
