"""Audit entries for changes to residents' credentials: guest passes and vehicles.

Each creation, change and revocation of a guest pass and each registration and removal of a
vehicle is an entry of the hash-chained audit log, written in the transaction of the change.
``actor`` is who made it (``user:<id>`` for a resident, ``operator:<id>`` for an operator);
``reason`` names the object by id as ``key=value`` pairs: never a code, never a plate (a
vehicle is its id).
"""

from __future__ import annotations

from propdev.storage.audit import AuditRecord

PASS_CREATE = "guest_pass.create"
PASS_CHANGE = "guest_pass.change"
PASS_REVOKE = "guest_pass.revoke"
VEHICLE_REGISTER = "vehicle.register"
VEHICLE_REMOVE = "vehicle.remove"


def resident(user_id: str) -> str:
    """The audit actor of a resident (as for their opens)."""
    return f"user:{user_id}"


def change(actor: str, action: str, *, at: float, **ids: object) -> AuditRecord:
    """The audit record of a change to a credential, its ids as ``key=value`` pairs."""
    return AuditRecord(
        at=at,
        actor=actor,
        action=action,
        access_point_id=None,
        decision="granted",
        reason=" ".join(f"{k}={'' if v is None else v}" for k, v in ids.items()),
    )
