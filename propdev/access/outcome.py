"""What an open came to, in the domain's words: ``granted``, ``refused`` or ``failed``.

Every way in (an app tap, an operator's manual open, a plate at a barrier, a code at a keypad,
the same arriving over gRPC) ends in one ``OpenOutcome``. It names no HTTP status: the edge
(``propdev.http.open_outcomes``) turns it into a status and a problem document, gRPC into its
own codes. An idempotent replay stores and returns the outcome itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any


class Result(enum.StrEnum):
    GRANTED = "granted"  # the partner confirmed: the door opened
    REFUSED = "refused"  # a final no: our rules, or the device vendor
    FAILED = "failed"  # nobody said no, but it did not open: retrying may help


class Reason(enum.StrEnum):
    """Why an open was refused or failed (``OpenOutcome.reason``; audit entries and events
    carry the same words). A guest pass's own refusals (``pass_expired``, ``pass_used_up``…)
    and ``locked_out`` come from ``propdev.access.passes`` and ``lockout``."""

    # Refused by our rules: nothing was sent to the vendor.
    NO_RIGHT = "no_right"
    OUTSIDE_SCHEDULE = "outside_schedule"
    UNKNOWN_ACCESS_POINT = "unknown_access_point"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    STALE_EVENT = "stale_event"
    PLATE_UNREADABLE = "plate_unreadable"
    UNKNOWN_PLATE = "unknown_plate"
    # Refused by the vendor: "vendor_refused:<the vendor's reason>".
    VENDOR_REFUSED = "vendor_refused"
    # Failed (retry later): the partner, the cluster, this node.
    PARTNER_TIMEOUT = "partner_timeout"
    PARTNER_UNAVAILABLE = "partner_unavailable"
    PARTNER_CIRCUIT_OPEN = "partner_circuit_open"
    PARTNER_BUSY = "partner_busy"
    NO_PARTNER = "no_partner"  # no gateway for the access point's partner on this node
    DEVICE_TIMEOUT = "device_timeout"  # the door's actor did not answer within the deadline
    CLUSTER_UNAVAILABLE = "cluster_unavailable"
    NODE_DRAINING = "node_draining"


# The command lifecycle's words for a failed command (``GET /api/v1/commands/{id}``).
LIFECYCLE_REASONS = {
    "device_offline": "offline",
    "device_jammed": "jammed",
    "device_busy": "busy",
    "denied": "refused",
    Reason.PARTNER_TIMEOUT: "timeout",
    Reason.PARTNER_UNAVAILABLE: "unavailable",
}


@dataclass(frozen=True, slots=True)
class OpenOutcome:
    """The answer of the opening pipeline (and of a device actor to ``OpenAccessPoint``)."""

    result: Result
    access_point_id: str
    reason: str = ""  # a reason code above; empty when granted
    command_id: str | None = None
    vendor_command_id: str | None = None
    vendor_reason: str | None = None  # the vendor's own refusal code (vendor_refused only)
    retry_after: float | None = None  # seconds, for failures worth retrying later
    detail: str = ""  # the partner's words for a failure, if any
    replayed: bool = False  # the stored outcome of an earlier request with the same key
    online: bool | None = None  # what the vendor's answer says of the device; None: no news

    @property
    def granted(self) -> bool:
        return self.result is Result.GRANTED

    @property
    def lifecycle_reason(self) -> str:
        """The failed command's reason as the command lifecycle names it."""
        key = self.vendor_reason if self.vendor_reason is not None else self.reason
        return LIFECYCLE_REASONS.get(key, key)

    def as_replay(self) -> OpenOutcome:
        return replace(self, replayed=True)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (stored with an idempotency key, and sent between nodes)."""
        return {
            "result": self.result.value,
            "access_point_id": self.access_point_id,
            "reason": self.reason,
            "command_id": self.command_id,
            "vendor_command_id": self.vendor_command_id,
            "vendor_reason": self.vendor_reason,
            "retry_after": self.retry_after,
            "detail": self.detail,
            "replayed": self.replayed,
            "online": self.online,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpenOutcome:
        return cls(
            result=Result(data["result"]),
            access_point_id=str(data["access_point_id"]),
            reason=str(data.get("reason", "")),
            command_id=data.get("command_id"),
            vendor_command_id=data.get("vendor_command_id"),
            vendor_reason=data.get("vendor_reason"),
            retry_after=data.get("retry_after"),
            detail=str(data.get("detail", "")),
            replayed=bool(data.get("replayed", False)),
            online=data.get("online"),
        )


def granted(access_point_id: str, command_id: str, vendor_command_id: str | None) -> OpenOutcome:
    return OpenOutcome(
        Result.GRANTED,
        access_point_id,
        command_id=command_id,
        vendor_command_id=vendor_command_id,
        online=True,
    )


def refused(access_point_id: str, reason: str, **fields: Any) -> OpenOutcome:
    return OpenOutcome(Result.REFUSED, access_point_id, reason, **fields)


def failed(access_point_id: str, reason: str, **fields: Any) -> OpenOutcome:
    return OpenOutcome(Result.FAILED, access_point_id, reason, **fields)


def stored_answer(status: int, body: dict[str, Any], access_point_id: str) -> OpenOutcome:
    """An idempotency answer stored before outcomes were (an HTTP status and body): what it
    said, as an outcome. Only granted (200) and vendor-refused (403) answers were stored."""
    if "result" in body:
        return OpenOutcome.from_dict(body)
    point = str(body.get("access_point_id", access_point_id))
    if status == 200:
        return granted(point, str(body["command_id"]), body.get("vendor_command_id"))
    vendor_reason = str(body.get("reason", "denied"))
    return refused(
        point,
        f"{Reason.VENDOR_REFUSED}:{vendor_reason}",
        command_id=body.get("command_id"),
        vendor_reason=vendor_reason,
    )
