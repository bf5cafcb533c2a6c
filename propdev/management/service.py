"""``Management``: the operator's services of one node, built once and shared by the routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from propdev.accounts import ACTIVATION_CODE_TTL
from propdev.management.cutoffs import SessionCutoffs
from propdev.management.errors import NoGatewayError, UnknownObjectError
from propdev.management.estate import Estate
from propdev.management.households import Households
from propdev.management.imports import CsvImport, ImportReport
from propdev.management.points import AccessPoints, Point
from propdev.management.residents import Residents
from propdev.management.rights import Rights
from propdev.management.sync import PartnerSync
from propdev.partners import PartnerAdapter
from propdev.storage import Database

Refresh = Callable[[str], Awaitable[None]]


async def _nothing(access_point_id: str) -> None:
    return None


@dataclass(slots=True)
class Management:
    db: Database
    estate: Estate
    points: AccessPoints
    residents: Residents
    rights: Rights
    cutoffs: SessionCutoffs
    gateways: Mapping[str, PartnerAdapter]
    refresh_device: Refresh = _nothing  # a device actor re-reads its access point

    @classmethod
    def build(
        cls,
        db: Database,
        cutoffs: SessionCutoffs,
        gateways: Mapping[str, PartnerAdapter],
        *,
        refresh_device: Refresh = _nothing,
        activation_ttl: float = ACTIVATION_CODE_TTL,
    ) -> Management:
        return cls(
            db,
            Estate(db),
            AccessPoints(db),
            Residents(db, cutoffs, activation_ttl=activation_ttl),
            Rights(db),
            cutoffs,
            gateways,
            refresh_device,
        )

    @property
    def households(self) -> Households:
        """Owners' invitations and removals of household members."""
        return Households(self.db, self.residents, activation_ttl=self.residents.activation_ttl)

    async def update_point(self, actor: str, point_id: str, body: object) -> Point:
        point = await self.points.update(actor, point_id, body)
        await self.refresh_device(point_id)
        return point

    async def delete_point(self, actor: str, point_id: str) -> dict[str, int]:
        await self.refresh_device(point_id)
        return await self.points.delete(actor, point_id)

    async def import_csv(self, actor: str, text: str, *, dry_run: bool) -> ImportReport:
        report = await CsvImport(self.db).run(actor, text, dry_run=dry_run)
        if not dry_run:
            for line in report.lines:
                if line["outcome"] == "changed":
                    await self.refresh_device(line["access_point_id"])
        return report

    async def sync_partner(
        self, actor: str, partner: str, *, apply: bool, building_id: str | None
    ) -> dict[str, Any]:
        """Compare (and with ``apply``, align) our access points with the partner's list.

        Raises the partner's errors (``PartnerError``) when its list cannot be read.
        """
        known = await self.db.fetch_one("SELECT id FROM partners WHERE id = :p", p=partner)
        gateway = self.gateways.get(partner)
        if known is None:
            raise UnknownObjectError("partner", partner)
        if gateway is None:
            raise NoGatewayError(f"no gateway to partner {partner!r} on this node")
        devices = await gateway.list_devices()
        report = await PartnerSync(self.db).run(
            actor, partner, devices, apply=apply, building_id=building_id
        )
        if apply:
            for entry in report["changed"]:
                await self.refresh_device(entry["access_point_id"])
        return report
