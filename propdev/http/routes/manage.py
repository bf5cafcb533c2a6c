"""The operators' management API (``/admin/api/v1/...``): sites, buildings, apartments, access
points and their devices, residents and rights (see ``propdev.management``).

``setup(app, ...)`` builds the node's ``Management`` services from the parts it is given, hooks
moved-out residents' token refusal into the verifier and adds the routes of ``manage_estate``,
``manage_devices`` and ``manage_people``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from propdev.http.keys import MANAGEMENT, PRIVACY, STAFF
from propdev.http.routes.manage_devices import routes as device_routes
from propdev.http.routes.manage_estate import routes as estate_routes
from propdev.http.routes.manage_people import routes as people_routes
from propdev.http.routes.manage_privacy import routes as privacy_routes
from propdev.management import Management, SessionCutoffs
from propdev.privacy import PersonalData
from propdev.staff import Staff

if TYPE_CHECKING:
    from propdev.actors import ActorSystem
    from propdev.partners import PartnerAdapter
    from propdev.registry import Bus, Revocations
    from propdev.security import TokenVerifier
    from propdev.storage import Database


def setup(
    app: web.Application,
    *,
    db: Database,
    bus: Bus,
    verifier: TokenVerifier,
    revocations: Revocations | None,
    token_ttl: float,
    activation_ttl: float,
    gateways: Mapping[str, PartnerAdapter],
    system: ActorSystem,
    end_grant: Callable[[str, float], Awaitable[None]] | None = None,
) -> None:
    """Add the management routes and services to ``app`` (``revocations``: the cluster's, or
    None embedded)."""
    cutoffs = SessionCutoffs.for_node(bus, verifier, revocations, token_ttl=token_ttl)

    async def refresh_device(access_point_id: str) -> None:
        address = f"device:{access_point_id}"
        await system.passivate_matching(lambda a: a.key == address, within=2.0)

    app[MANAGEMENT] = Management.build(
        db, cutoffs, gateways, refresh_device=refresh_device, activation_ttl=activation_ttl
    )
    app[PRIVACY] = PersonalData(db, cutoffs.cut)  # an erasure cuts sessions as a move-out does
    app[STAFF] = Staff(  # a disabled staff account's tokens are cut as a move-out's
        db, cut=cutoffs.cut, end_grant=end_grant, token_ttl=token_ttl, activation_ttl=activation_ttl
    )

    async def load_cutoffs(app: web.Application) -> None:
        await cutoffs.load(db)

    app.on_startup.append(load_cutoffs)
    app.add_routes(estate_routes)
    app.add_routes(device_routes)
    app.add_routes(people_routes)
    app.add_routes(privacy_routes)
