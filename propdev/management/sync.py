"""Our access points of one partner against the partner's own device list.

``added``: devices the partner lists that no access point of ours holds (applied: a new access
point ``<partner>-<device id>`` in the building the operator names, under the vendor's name);
``changed``: access points whose device changed kind or came back after being gone (applied:
the kind is taken, ``gone_at`` cleared; our names are ours and never overwritten); ``gone``:
access points whose device the partner no longer lists (applied: ``gone_at`` set; nothing is
deleted, rights and the audit history stay). A preview (``apply: false``) changes nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

import propdev.management.fields as fields
from propdev.management.changes import details, record
from propdev.management.errors import ConflictError, InvalidFieldError, UnknownObjectError
from propdev.management.points import Catalogue, Point, PointSpec, write
from propdev.partners import DeviceInfo
from propdev.storage import Database

_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")


def new_point_id(catalogue: Catalogue, partner: str, device_id: str) -> str:
    base = _UNSAFE.sub("-", f"{partner}-{device_id}").strip("-.")[:56] or partner
    candidate, n = base, 1
    while candidate in catalogue.points:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _name(device: DeviceInfo) -> str:
    try:
        return fields.text(device.name, "name")
    except InvalidFieldError:
        return device.device_id[: fields.MAX_NAME]


class PartnerSync:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def run(
        self,
        actor: str,
        partner: str,
        devices: Sequence[DeviceInfo],
        *,
        apply: bool,
        building_id: str | None,
    ) -> dict[str, Any]:
        now = time.time()
        added: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []
        unchanged: list[str] = []
        writes: list[tuple[Point, str, str]] = []  # point, action, audit details
        try:
            async with self.db.transaction() as conn:
                catalogue = await Catalogue.load(conn)
                if partner not in catalogue.partners:
                    raise UnknownObjectError("partner", partner)
                if building_id is not None and building_id not in catalogue.buildings:
                    raise InvalidFieldError("building_id", "no such building")
                listed = {d.device_id: d for d in devices}
                ours = sorted(
                    (p for p in catalogue.points.values() if p.spec.partner == partner),
                    key=lambda p: p.spec.id,
                )
                for point in ours:
                    device = listed.get(point.spec.device_id)
                    entry = {"access_point_id": point.spec.id, "device_id": point.spec.device_id}
                    if device is None:
                        if point.gone_at is None:
                            gone.append(entry)
                            writes.append(
                                (
                                    catalogue.mark_gone(point.spec.id, now),
                                    "access_point.sync_gone",
                                    details(partner=partner),
                                )
                            )
                        else:
                            unchanged.append(point.spec.id)
                        continue
                    fields = []
                    if device.kind != point.spec.kind:
                        fields.append("kind")
                    if point.gone_at is not None:
                        fields.append("gone_at")
                    if not fields:
                        unchanged.append(point.spec.id)
                        continue
                    spec = PointSpec(
                        point.spec.id,
                        point.spec.name,
                        device.kind,
                        point.spec.building_id,
                        partner,
                        point.spec.device_id,
                    )
                    changed.append({**entry, "fields": fields, "kind": device.kind})
                    writes.append(
                        (
                            catalogue.put(spec),
                            "access_point.sync_change",
                            details(partner=partner, fields=",".join(fields)),
                        )
                    )
                held = {p.spec.device_id for p in ours}
                new = [d for d in devices if d.device_id not in held]
                if new and apply and building_id is None:
                    raise InvalidFieldError(
                        "building_id", "required to apply: the building of the new devices"
                    )
                for device in new:
                    point_id = new_point_id(catalogue, partner, device.device_id)
                    added.append(
                        {
                            "access_point_id": point_id,
                            "device_id": device.device_id,
                            "kind": device.kind,
                            "name": device.name,
                        }
                    )
                    if building_id is not None:
                        spec = PointSpec(
                            point_id,
                            _name(device),
                            device.kind,
                            building_id,
                            partner,
                            device.device_id,
                        )
                        writes.append(
                            (
                                catalogue.put(spec),
                                "access_point.sync_add",
                                details(partner=partner, device_id=device.device_id),
                            )
                        )
                if apply:
                    for point, action, reason in writes:
                        await write(conn, point)
                        await record(
                            conn,
                            self.db.dialect,
                            actor=actor,
                            action=action,
                            access_point_id=point.spec.id,
                            reason=reason,
                            at=now,
                        )
                    await record(
                        conn,
                        self.db.dialect,
                        actor=actor,
                        action="partner.sync",
                        reason=details(
                            partner=partner,
                            added=len(added),
                            changed=len(changed),
                            gone=len(gone),
                            unchanged=len(unchanged),
                        ),
                        at=now,
                    )
        except sa.exc.IntegrityError:
            raise ConflictError("the estate changed during the sync; run it again") from None
        return {
            "partner": partner,
            "applied": apply,
            "added": added,
            "changed": changed,
            "gone": gone,
            "unchanged": unchanged,
        }
