"""The "acme" vendor simulated: accepts a command at once (202 + ticket), confirms it later by
a ``command_result`` callback, with its own lock ids and error codes (see ``partners.acme``).

Devices, faults, received commands and idempotency are a ``VendorSimulator``'s (``core``), so
the control API is the same, mounted under ``/sim/acme/v1``. Fault modes: ``error``, ``drop``
and ``outage`` hit the submission itself; ``slow`` delays the confirmation (the 202 is
prompt); ``deny``, an offline or a jammed lock confirm with ``result: "failed"`` and
``E_DENIED``, ``E_LOCK_OFFLINE``, ``E_JAMMED``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from propdev.devkit.sim_server import credential_middleware, drop
from propdev.devkit.vendor_sim.app import control_routes, signature_middleware
from propdev.devkit.vendor_sim.state import MAX_REMEMBERED, Callback, VendorSimulator
from propdev.http.body import parse_json
from propdev.partners import ConnectionDropped, DeviceInfo, VendorError

ACME_DEVICES: tuple[DeviceInfo, ...] = (
    DeviceInfo("LK-7F3A-0001", "door", "Acme service door"),
    DeviceInfo("LK-7F3A-0002", "door", "Acme bicycle room"),
    DeviceInfo("GT-7F3A-0101", "barrier", "Acme yard gate"),
)
# The core simulator's error codes in acme's words.
ACME_CODES = {
    "device_offline": "E_LOCK_OFFLINE",
    "device_jammed": "E_JAMMED",
    "device_busy": "E_BUSY",
    "denied": "E_DENIED",
    "unknown_device": "E_UNKNOWN_LOCK",
    "invalid_request": "E_BAD_REQUEST",
    "idempotency_key_reused": "E_BAD_REQUEST",
}
ACME_PREFIX = "/acme/v2"
CONTROL_PREFIX = "/sim/acme/v1"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def acme_code(exc: VendorError) -> str:
    return ACME_CODES.get(exc.code, "E_INTERNAL")


class AcmeSimulator:
    """Acme's locks in memory; ``callback`` receives its ``command_result`` and other events."""

    def __init__(
        self,
        devices: tuple[DeviceInfo, ...] = ACME_DEVICES,
        *,
        callback: Callback | None = None,
        now: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.core = VendorSimulator(devices, callback=callback, now=now)
        self._tickets: OrderedDict[str, tuple[str, str]] = OrderedDict()

    @property
    def callback(self) -> Callback | None:
        return self.core.callback

    @callback.setter
    def callback(self, value: Callback | None) -> None:
        self.core.callback = value

    async def close(self) -> None:
        await self.core.close()

    async def submit(self, uid: str, *, reference: str, traceparent: str | None) -> str:
        """Take an unlock command: its ticket (the same one for a repeated ``reference``).

        Raises ``VendorError`` with acme's code (or ``ConnectionDropped``) when not taken.
        """
        if not reference:
            raise VendorError(400, "E_BAD_REQUEST", "a reference is required")
        try:
            await self.core.device(uid)  # transport faults; an unknown lock
        except ConnectionDropped:
            raise
        except VendorError as exc:
            raise VendorError(exc.status, acme_code(exc), exc.message) from exc
        known = self._tickets.get(reference)
        if known is not None:
            if known[0] != uid:
                raise VendorError(422, "E_BAD_REQUEST", "reference used for another lock")
            return known[1]
        ticket = f"tk_{uuid.uuid4().hex}"
        self._tickets[reference] = (uid, ticket)
        if len(self._tickets) > MAX_REMEMBERED:
            self._tickets.popitem(last=False)
        self.core.spawn(self._complete(uid, reference, ticket, traceparent))
        return ticket

    async def _complete(
        self, uid: str, reference: str, ticket: str, traceparent: str | None
    ) -> None:
        fields: dict[str, Any] = {"ticket": ticket, "reference": reference}
        try:
            await self.core.open(uid, reference, traceparent, passage=False)
        except VendorError as exc:
            await self.core.emit_event(
                uid, "command_result", result="failed", error=acme_code(exc), **fields
            )
            return
        await self.core.emit_event(uid, "command_result", result="done", **fields)
        await self.core.passage(uid, **fields)

    async def locks(self) -> list[dict[str, Any]]:
        return [self._lock(d) for d in await self.core.list_devices()]

    async def lock(self, uid: str) -> dict[str, Any]:
        try:
            return self._lock(await self.core.device(uid))
        except ConnectionDropped:
            raise
        except VendorError as exc:
            raise VendorError(exc.status, acme_code(exc), exc.message) from exc

    @staticmethod
    def _lock(device: dict[str, Any]) -> dict[str, Any]:
        return {
            "uid": device["device_id"],
            "type": "GATE" if device["kind"] == "barrier" else "DOOR",
            "label": device["name"],
            "connected": device["online"],
            "condition": device["state"].upper(),
        }


def _error(exc: VendorError, request: web.Request) -> web.StreamResponse:
    if isinstance(exc, ConnectionDropped):
        return drop(request)
    body = {"accepted": False, "code": exc.code, "detail": exc.message}
    return web.json_response(body, status=exc.status if exc.status >= 400 else 500)


def acme_auth_middleware(*, api_key: str) -> Middleware:
    """401 for acme API calls without ``Authorization: Bearer <api key>``."""
    return credential_middleware(
        prefix=ACME_PREFIX + "/",
        header="Authorization",
        expected=f"Bearer {api_key}",
        refusal={"accepted": False, "code": "E_AUTH", "detail": "bad credentials"},
    )


def _acme_signature_refusal(reason: str) -> web.StreamResponse:
    body = {"accepted": False, "code": "E_SIGNATURE", "detail": reason}
    return web.json_response(body, status=401)


def acme_signature_middleware(sim: AcmeSimulator) -> Middleware:
    """401 ``E_SIGNATURE`` (detail: the reason) for acme API calls without our valid RFC 9421
    signature, while ``sim.core.signatures`` is set."""
    return signature_middleware(sim.core, prefix=ACME_PREFIX + "/", refusal=_acme_signature_refusal)


def acme_routes(sim: AcmeSimulator) -> list[web.RouteDef]:
    """Acme's API, answering from ``sim`` (mount with ``acme_auth_middleware``)."""

    async def submit(request: web.Request) -> web.StreamResponse:
        try:
            body = parse_json(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("action") != "unlock":
            return _error(
                VendorError(400, "E_BAD_REQUEST", 'expected {"action": "unlock"}'), request
            )
        reference = request.headers.get("Idempotency-Key") or body.get("reference")
        if not isinstance(reference, str) or not 0 < len(reference) <= 255:
            return _error(VendorError(400, "E_BAD_REQUEST", "a reference is required"), request)
        try:
            ticket = await sim.submit(
                request.match_info["uid"],
                reference=reference,
                traceparent=request.headers.get("traceparent"),
            )
        except VendorError as exc:
            return _error(exc, request)
        return web.json_response({"accepted": True, "ticket": ticket}, status=202)

    async def get_locks(request: web.Request) -> web.StreamResponse:
        try:
            return web.json_response({"items": await sim.locks()})
        except VendorError as exc:
            return _error(exc, request)

    async def get_lock(request: web.Request) -> web.StreamResponse:
        try:
            return web.json_response(await sim.lock(request.match_info["uid"]))
        except VendorError as exc:
            return _error(exc, request)

    return [
        web.post(f"{ACME_PREFIX}/locks/{{uid}}/commands", submit),
        web.get(f"{ACME_PREFIX}/locks", get_locks),
        web.get(f"{ACME_PREFIX}/locks/{{uid}}", get_lock),
    ]


def acme_control_routes(sim: AcmeSimulator) -> list[web.RouteDef]:
    """The simulator's control API for acme: ``/sim/v1/...`` of its core, under ``/sim/acme/v1``."""
    return [
        web.route(r.method, CONTROL_PREFIX + r.path.removeprefix("/sim/v1"), r.handler)
        for r in control_routes(sim.core)
    ]
