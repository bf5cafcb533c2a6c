"""The operators' management API (``/admin/api/v1/...``): sites, buildings, apartments, access
points and their devices, residents and rights (see ``propdev.management``).

``setup(app, node)`` builds the node's ``Management`` services, hooks moved-out residents'
token refusal into the verifier and adds the routes of ``manage_estate``, ``manage_devices``
and ``manage_people``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from propdev.http.routes.manage_devices import routes as device_routes
from propdev.http.routes.manage_estate import routes as estate_routes
from propdev.http.routes.manage_people import routes as people_routes
from propdev.http.routes.manage_support import MANAGEMENT
from propdev.management import Management, SessionCutoffs

if TYPE_CHECKING:
    from propdev.node import Node


def setup(app: web.Application, node: Node) -> None:
    """Add the management routes and services to ``app``."""
    cutoffs = SessionCutoffs.for_node(
        node.bus,
        node.verifier,
        node.cluster.revocations if node.cluster is not None else None,
        token_ttl=node.settings.access_token_ttl,
    )

    async def refresh_device(access_point_id: str) -> None:
        address = f"device:{access_point_id}"
        await node.system.passivate_matching(lambda a: a.key == address, within=2.0)

    app[MANAGEMENT] = Management.build(
        node.db, cutoffs, node.gateways, refresh_device=refresh_device
    )

    async def load_cutoffs(app: web.Application) -> None:
        await cutoffs.load(node.db)

    app.on_startup.append(load_cutoffs)
    app.add_routes(estate_routes)
    app.add_routes(device_routes)
    app.add_routes(people_routes)
