"""The intercom/barrier vendor simulator (partner ``simulator``) and the acme vendor's: in
memory, in-process (embedded mode), or as an HTTPS server (``run.py partner-sim``)."""

from __future__ import annotations

from propdev.devkit.vendor_sim.acme import (
    ACME_DEVICES,
    AcmeSimulator,
    acme_control_routes,
    acme_routes,
)
from propdev.devkit.vendor_sim.app import control_routes, make_vendor_app, vendor_routes
from propdev.devkit.vendor_sim.server import (
    DEFAULT_PORT,
    PartnerIdentity,
    PartnerSimServer,
    run_partner_sim,
    serve_partner_sim,
)
from propdev.devkit.vendor_sim.state import (
    DEFAULT_DEVICES,
    FaultMode,
    Faults,
    OpenAnswer,
    VendorSimulator,
)

__all__ = (
    "ACME_DEVICES",
    "DEFAULT_DEVICES",
    "DEFAULT_PORT",
    "AcmeSimulator",
    "FaultMode",
    "Faults",
    "OpenAnswer",
    "PartnerIdentity",
    "PartnerSimServer",
    "VendorSimulator",
    "acme_control_routes",
    "acme_routes",
    "control_routes",
    "make_vendor_app",
    "run_partner_sim",
    "serve_partner_sim",
    "vendor_routes",
)
