"""The development kit: the simulated vendors and housing-and-utilities system, and the demo
estate. Not production code: production packages never import it; the composition root
(``propdev.node``, ``propdev.cli``) imports it lazily, where the embedded demo mode (no
``PROPDEV_PARTNER_URL`` / ``PROPDEV_UTILITIES_URL``) runs the simulators in-process, and for
``run.py seed-demo | partner-sim | utilities-sim``.

- ``vendor_sim/``: the intercom/barrier vendor (partner ``simulator``) and acme, in memory and
  over HTTPS (``run.py partner-sim``), each with its control API (``/sim/v1``, ``/sim/acme/v1``).
- ``housing_sim.py``, ``housing_sim_server.py``: the housing-and-utilities (ЖКХ) system and its
  HTTPS server (``run.py utilities-sim``).
- ``housing_estate.py``: the demo apartments' utilities accounts and meters, on both sides.
- ``demo.py``: ``seed_demo`` (``run.py seed-demo``) and ``register_partner``.
"""

from __future__ import annotations

from propdev.devkit.demo import LOOPBACK, PARTNER, SITE, register_partner, seed_demo
from propdev.devkit.housing_estate import DEMO_ACCOUNTS, DemoAccount, DemoMeter, seed_utilities
from propdev.devkit.housing_sim import UtilitiesFault, UtilitiesSimulator
from propdev.devkit.housing_sim_server import (
    UtilitiesSimServer,
    run_utilities_sim,
    serve_housing_sim,
    utilities_routes,
)
from propdev.devkit.vendor_sim import (
    ACME_DEVICES,
    DEFAULT_DEVICES,
    AcmeSimulator,
    FaultMode,
    Faults,
    OpenAnswer,
    PartnerIdentity,
    PartnerSimServer,
    VendorSimulator,
    acme_control_routes,
    acme_routes,
    control_routes,
    make_vendor_app,
    run_partner_sim,
    serve_partner_sim,
    vendor_routes,
)

__all__ = (
    "ACME_DEVICES",
    "DEFAULT_DEVICES",
    "DEMO_ACCOUNTS",
    "LOOPBACK",
    "PARTNER",
    "SITE",
    "AcmeSimulator",
    "DemoAccount",
    "DemoMeter",
    "FaultMode",
    "Faults",
    "OpenAnswer",
    "PartnerIdentity",
    "PartnerSimServer",
    "UtilitiesFault",
    "UtilitiesSimServer",
    "UtilitiesSimulator",
    "VendorSimulator",
    "acme_control_routes",
    "acme_routes",
    "control_routes",
    "make_vendor_app",
    "register_partner",
    "run_partner_sim",
    "run_utilities_sim",
    "seed_demo",
    "seed_utilities",
    "serve_housing_sim",
    "serve_partner_sim",
    "utilities_routes",
    "vendor_routes",
)
