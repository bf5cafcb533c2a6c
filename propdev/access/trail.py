"""Audit entries of the access domain: opens, and changes to residents' credentials.

An open's entry has action ``open`` (``manual_open`` for an operator's), decision ``granted``,
``denied`` (refused: by our rules or the vendor) or ``failed`` (nobody said no, but the door
did not open: the partner, the cluster, this node), the reason code of ``Reason``; see
docs/audit.md. Most are written by the opening pipeline with the command they record;
``unanswered_open`` is the entry of an open the node answered itself as failed, because the
door's actor could not be reached or did not answer in time.

Credentials: guest passes and vehicles.

Each creation, change and revocation of a guest pass and each registration and removal of a
vehicle is an entry of the hash-chained audit log, written in the transaction of the change.
``actor`` is who made it (``user:<id>`` for a resident, ``operator:<id>`` for an operator);
``reason`` names the object by id as ``key=value`` pairs: never a code, never a plate (a
vehicle is its id).
"""

from __future__ import annotations

from dataclasses import replace

from propdev.access.outcome import Result
from propdev.storage.audit import AuditRecord

PASS_CREATE = "guest_pass.create"
PASS_CHANGE = "guest_pass.change"
PASS_REVOKE = "guest_pass.revoke"
VEHICLE_REGISTER = "vehicle.register"
VEHICLE_REMOVE = "vehicle.remove"


_DECISIONS = {Result.GRANTED: "granted", Result.REFUSED: "denied", Result.FAILED: "failed"}


def audit_decision(result: Result) -> str:
    """An open's result in the audit's words: granted, denied or failed."""
    return _DECISIONS[result]


def open_action(manual: bool) -> str:
    return "manual_open" if manual else "open"


def unanswered_open(
    *,
    at: float,
    access_point_id: str,
    user_id: str,
    reason: str,
    on_behalf: str | None = None,
    note: str = "",
) -> AuditRecord:
    """The ``failed`` entry of an open the node answered itself (``device_timeout``,
    ``cluster_unavailable``, ``node_draining``): the requester (``user:<id>``, or
    ``on_behalf``, an operator) was told it failed. No ``command_id``: an entry names a
    command only when its writer knows the partner was sent one (one entry per granted
    command); after a ``device_timeout`` the door's actor may still finish and write its own
    entry, with the command."""
    return AuditRecord(
        at=at,
        actor=on_behalf or resident(user_id),
        action=open_action(on_behalf is not None),
        access_point_id=access_point_id,
        decision="failed",
        reason="; ".join(r for r in (reason, note) if r),
        subject=user_id,
    )


def resident(user_id: str) -> str:
    """The audit actor of a resident (as for their opens)."""
    return f"user:{user_id}"


def refused(actor: str, action: str, code: str, *, at: float, **ids: object) -> AuditRecord:
    """The ``denied`` entry of a change refused by our rules (``too_many_vehicles``,
    ``plate_taken``, ``not_entitled``...): the code, then the ids as for ``change``."""
    owner = ids.get("owner_id")
    entry = change(actor, action, at=at, subject=None if owner is None else str(owner))
    pairs = " ".join(f"{k}={'' if v is None else v}" for k, v in ids.items())
    return replace(entry, decision="denied", reason=f"{code} {pairs}".strip())


def change(
    actor: str, action: str, *, at: float, subject: str | None = None, **ids: object
) -> AuditRecord:
    """The audit record of a change to a credential, its ids as ``key=value`` pairs;
    ``subject`` is the resident whose credential it is (default: the ``owner_id`` given)."""
    owner = ids.get("owner_id")
    return AuditRecord(
        at=at,
        actor=actor,
        action=action,
        access_point_id=None,
        decision="granted",
        reason=" ".join(f"{k}={'' if v is None else v}" for k, v in ids.items()),
        subject=subject if subject is not None else None if owner is None else str(owner),
    )
