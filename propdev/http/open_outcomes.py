"""The edge's side of an open: the message in (``open_message``), and the one table by which
a domain ``OpenOutcome`` becomes an HTTP answer (``open_response``).

The opening pipeline (``propdev.access.opening``) says granted, refused or failed with a reason
code; this module alone knows which status code, problem type, title and ``Retry-After`` that
is (``propdev.grpc`` has its own codes for the same outcomes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from aiohttp import web

from propdev.access import OpenOutcome, Reason, Result, command_id_for
from propdev.actors.messages import OpenAccessPoint
from propdev.http.errors import PROBLEM_BASE
from propdev.http.principal import Principal
from propdev.observability import current_traceparent

Detail = Callable[[OpenOutcome], str]


def _said(text: str) -> Detail:
    return lambda _outcome: text


# reason code -> (status, problem type, title, detail, extra fields: the command id, the reason)
_PROBLEMS: dict[str, tuple[int, str, str, Detail, bool, bool]] = {
    Reason.OUTSIDE_SCHEDULE: (
        403,
        "forbidden",
        "Forbidden",
        _said("You may not open this access point now."),
        False,
        True,
    ),
    Reason.UNKNOWN_ACCESS_POINT: (
        404,
        "not-found",
        "Not found",
        lambda o: f"No access point {o.access_point_id!r}.",
        False,
        False,
    ),
    Reason.IDEMPOTENCY_KEY_REUSED: (
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        _said("This Idempotency-Key was used for another access point."),
        False,
        False,
    ),
    Reason.VENDOR_REFUSED: (
        403,
        "vendor-refused",
        "Refused by the device",
        lambda o: f"The device vendor refused to open: {o.vendor_reason}.",
        True,
        True,
    ),
    Reason.PARTNER_CIRCUIT_OPEN: (
        503,
        "partner-circuit-open",
        "Partner unavailable",
        _said("The partner is failing; not calling it for a while."),
        True,
        False,
    ),
    Reason.PARTNER_BUSY: (
        503,
        "partner-busy",
        "Partner busy",
        _said("Too many calls to this partner are in flight."),
        True,
        False,
    ),
    Reason.PARTNER_TIMEOUT: (
        504,
        "partner-timeout",
        "Partner timeout",
        _said("The partner did not answer in time."),
        True,
        False,
    ),
    Reason.PARTNER_UNAVAILABLE: (
        502,
        "partner-unavailable",
        "Partner unavailable",
        lambda o: o.detail or "error",
        True,
        False,
    ),
    Reason.NO_PARTNER: (
        502,
        "partner-unavailable",
        "Partner unavailable",
        _said("No adapter for partner."),
        False,
        False,
    ),
    Reason.DEVICE_TIMEOUT: (
        504,
        "partner-timeout",
        "Timeout",
        _said("The device did not answer."),
        False,
        False,
    ),
    Reason.CLUSTER_UNAVAILABLE: (
        503,
        "cluster-unavailable",
        "Service unavailable",
        _said("The door's node cannot be reached right now; retry shortly."),
        False,
        False,
    ),
    Reason.NODE_DRAINING: (
        503,
        "node-draining",
        "Service unavailable",
        _said("This node is draining."),
        False,
        False,
    ),
}
# Any other refusal by our rules (no right; a credential's reasons): 403 with the reason.
_REFUSED = (
    403,
    "forbidden",
    "Forbidden",
    _said("You may not open this access point."),
    False,
    True,
)
_FAILED = (502, "partner-unavailable", "Partner unavailable", _said("error"), True, False)


def open_status(outcome: OpenOutcome) -> int:
    if outcome.result is Result.GRANTED:
        return 200
    return _problem_of(outcome)[0]


def _problem_of(outcome: OpenOutcome) -> tuple[int, str, str, Detail, bool, bool]:
    key = outcome.reason.partition(":")[0] if outcome.vendor_reason else outcome.reason
    found = _PROBLEMS.get(key)
    if found is not None:
        return found
    return _REFUSED if outcome.result is Result.REFUSED else _FAILED


def open_body(outcome: OpenOutcome) -> dict[str, Any]:
    """The JSON body of the answer: the grant, or an RFC 9457 problem document."""
    if outcome.result is Result.GRANTED:
        return {
            "status": "granted",
            "command_id": outcome.command_id,
            "access_point_id": outcome.access_point_id,
            "vendor_command_id": outcome.vendor_command_id,
        }
    status, kind, title, detail, with_command, with_reason = _problem_of(outcome)
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail(outcome),
    }
    if with_reason:
        body["reason"] = outcome.vendor_reason or outcome.reason
    if with_command and outcome.command_id is not None:
        body["command_id"] = outcome.command_id
    return body


def open_response(outcome: OpenOutcome) -> web.Response:
    """The HTTP answer to an open: 200 JSON, or problem+json with ``Retry-After`` where a retry
    may help, and ``Idempotent-Replayed: true`` on a stored answer."""
    headers: dict[str, str] = {}
    if outcome.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(outcome.retry_after)))
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    status = open_status(outcome)
    return web.json_response(
        open_body(outcome),
        status=status,
        headers=headers,
        content_type="application/json" if status < 400 else "application/problem+json",
    )


def open_message(
    caller: Principal,
    access_point_id: str,
    *,
    idempotency_key: str | None = None,
    operator_reason: str | None = None,
) -> OpenAccessPoint:
    """The message to the door's actor: a resident's open, or (``operator_reason``) an
    operator's manual one; its trace parent is our server span."""
    return OpenAccessPoint(
        access_point_id=access_point_id,
        user_id=caller.sub,
        username=str(caller.claims.get("preferred_username", "")),
        command_id=command_id_for(caller.sub, idempotency_key),
        idempotency_key=idempotency_key,
        traceparent=current_traceparent(),
        on_behalf=None if operator_reason is None else f"operator:{caller.sub}",
        note=operator_reason or "",
    )
