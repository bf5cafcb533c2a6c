"""``PersonalData``: export and erasure of one resident, as the operators' routes call them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from propdev.privacy.erasure import Cut, ErasureReport, erase
from propdev.privacy.errors import UnknownPersonError
from propdev.privacy.export import collect, erased_at, find_resident
from propdev.storage import Database
from propdev.storage import audit as audit_log
from propdev.storage.audit import AuditRecord


@dataclass(slots=True)
class PersonalData:
    db: Database
    cut: Cut  # refuse a person's access tokens from a moment on, on every node
    clock: Callable[[], float] = field(default=time.time)

    async def export(self, actor: str, user_id: str) -> dict[str, Any]:
        """Everything held on the resident ``user_id``; audited as ``resident.export``
        (subject: the resident). ``UnknownPersonError`` when there is no such resident or
        they were erased."""
        row = await find_resident(self.db, user_id)
        if row is None or await erased_at(self.db, user_id) is not None:
            raise UnknownPersonError(user_id)
        now = self.clock()
        document = await collect(self.db, row, now=now)
        await audit_log.AuditLog(self.db).append(
            AuditRecord(
                at=now,
                actor=actor,
                action="resident.export",
                access_point_id=None,
                decision="granted",
                reason=f"user_id={user_id}",
                subject=user_id,
            )
        )
        return document

    async def erase(self, actor: str, user_id: str) -> ErasureReport:
        """Erase the resident ``user_id`` (``propdev.privacy.erasure``)."""
        return await erase(self.db, actor, user_id, cut=self.cut, clock=self.clock)
