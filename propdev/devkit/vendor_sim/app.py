"""The simulated vendor over HTTP: its device API (``/vendor/v1``) and a control API (``/sim/v1``).

Vendor API (JSON; every call needs ``X-Api-Key``):

- ``GET /vendor/v1/devices`` → 200 ``{"devices": [device, ...]}``
- ``GET /vendor/v1/devices/{device_id}`` → 200 ``device``
- ``POST /vendor/v1/devices/{device_id}/open`` with ``Idempotency-Key`` (required, our request
  id) and optional ``traceparent`` → 200 ``{"status": "opened", "command_id", "device_id",
  "confirmed_at"}``; a repeated key replays the first answer with ``Idempotent-Replayed: true``.

When the simulator holds a ``RequestVerifier`` (``sim.signatures``; ``partner-sim`` makes one
for each partner named in ``PROPDEV_PARTNER_SIGNING``) every vendor API call must carry our RFC
9421 signature: else 401 ``{"error": "invalid_signature", "reason", "message"}``, the reason
being one of ``httpsig.REASONS`` (``unsigned``, ``expired``, ``bad_signature``, ...).

``device`` is ``{"device_id", "kind", "name", "online", "state", "last_seen"}``. Errors are
``{"error": code, "message"}``: 400 ``invalid_request``, 401 ``unauthorized``, 403 ``denied``,
404 ``unknown_device``, 409 ``device_offline`` | ``device_jammed`` | ``device_busy``, 422
``idempotency_key_reused``, 500 ``internal_error``. Faults ``drop`` and ``outage`` close the
connection without an answer.

Control API (no authentication; a test tool): ``GET|POST /sim/v1/faults``,
``GET /sim/v1/commands``, ``POST /sim/v1/reset``, ``POST /sim/v1/devices``,
``PATCH /sim/v1/devices/{device_id}`` (a change of ``online`` or ``state`` is called back),
``GET|POST /sim/v1/passages`` (``{"after_open_ms": N | null}``: an ``entry`` N ms after each
confirmed open, or none), ``POST /sim/v1/events`` (``{"device_id", "type", ...}``: that event
called back now, queued behind the callbacks made so far; 202 with the event as sent),
``POST /sim/v1/callbacks/flush`` (answers 204 once every callback
made so far was delivered or given up on), ``GET /sim/v1/signatures`` (``{"required": bool}``
and, when required, ``key_id``, ``verified`` and ``refused`` counts by reason). Bad input (JSON
the node's ``parse_json`` refuses, too: nested too deeply, a key twice...) → 400
``application/problem+json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from propdev.devkit.sim_server import credential_middleware, drop
from propdev.devkit.vendor_sim.state import FaultMode, VendorSimulator
from propdev.http.body import parse_json
from propdev.partners import ConnectionDropped, VendorError

API_KEY_HEADER = "X-Api-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
VENDOR_PREFIX = "/vendor/v1/"
MAX_KEY_LENGTH = 255
PROBLEM_BASE = "https://propdev.example/problems/"

log = structlog.get_logger()


# -- vendor API ---------------------------------------------------------------------------------


def _vendor_error(exc: VendorError, request: web.Request) -> web.StreamResponse:
    if isinstance(exc, ConnectionDropped):
        return drop(request)
    return web.json_response(exc.body(), status=exc.status)


def api_key_middleware(*, api_key: str) -> Middleware:
    """Answer 401 to vendor API calls without the right ``X-Api-Key``."""
    return credential_middleware(
        prefix=VENDOR_PREFIX,
        header=API_KEY_HEADER,
        expected=api_key,
        refusal={"error": "unauthorized", "message": f"missing or wrong {API_KEY_HEADER}"},
    )


def signature_middleware(
    sim: VendorSimulator, *, prefix: str, refusal: Callable[[str], web.StreamResponse]
) -> Middleware:
    """Answer ``refusal(reason)`` to API calls under ``prefix`` whose RFC 9421 signature
    ``sim.signatures`` refuses (no check while it is None)."""

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        verifier = sim.signatures
        if verifier is not None and request.path.startswith(prefix):
            url = f"{request.scheme}://{request.host}{request.raw_path}"
            reason = verifier.verify(request.method, url, request.headers, await request.read())
            if reason is not None:
                log.info("simulator_signature_refused", path=request.path, reason=reason)
                return refusal(reason)
        return await handler(request)

    return impl


def _vendor_signature_refusal(reason: str) -> web.StreamResponse:
    message = f"request signature refused: {reason}"
    body = {"error": "invalid_signature", "reason": reason, "message": message}
    return web.json_response(body, status=401)


def vendor_routes(sim: VendorSimulator) -> list[web.RouteDef]:
    """The vendor's device API, answering from ``sim``."""

    async def list_devices(request: web.Request) -> web.StreamResponse:
        try:
            devices = await sim.list_devices()
        except VendorError as exc:
            return _vendor_error(exc, request)
        return web.json_response({"devices": devices})

    async def get_device(request: web.Request) -> web.StreamResponse:
        try:
            device = await sim.device(request.match_info["device_id"])
        except VendorError as exc:
            return _vendor_error(exc, request)
        return web.json_response(device)

    async def open_device(request: web.Request) -> web.StreamResponse:
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if not key or len(key) > MAX_KEY_LENGTH:
            body = {"error": "invalid_request", "message": f"{IDEMPOTENCY_HEADER} is required"}
            return web.json_response(body, status=400)
        replayed = sim.knows(key)
        try:
            answer = await sim.open(
                request.match_info["device_id"], key, request.headers.get("traceparent")
            )
        except VendorError as exc:
            return _vendor_error(exc, request)
        headers = {REPLAYED_HEADER: "true"} if replayed else {}
        return web.json_response(answer.as_dict(), headers=headers)

    return [
        web.get("/vendor/v1/devices", list_devices),
        web.get("/vendor/v1/devices/{device_id}", get_device),
        web.post("/vendor/v1/devices/{device_id}/open", open_device),
    ]


# -- control API --------------------------------------------------------------------------------


def _problem(status: int, title: str, detail: str) -> web.Response:
    body = {
        "type": PROBLEM_BASE + "bad-request",
        "title": title,
        "status": status,
        "detail": detail,
    }
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/problem+json"
    )


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = parse_json(await request.read())  # the node's strict parser: never a 500
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _bad(detail: str) -> web.Response:
    return _problem(400, "Bad request", detail)


def control_routes(sim: VendorSimulator) -> list[web.RouteDef]:
    """The simulator's control API for tests (``/sim/v1``), to mount on any application."""
    modes = ", ".join(m.value for m in FaultMode)

    async def get_faults(request: web.Request) -> web.StreamResponse:
        return web.json_response(sim.faults.as_dict())

    async def set_faults(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if body is None:
            return _bad('expected a JSON object {"mode": ..., "latency_ms": ...}')
        unknown = set(body) - {"mode", "latency_ms"}
        if unknown:
            return _bad(f"unknown fields: {', '.join(sorted(unknown))}")
        mode = body.get("mode", "ok")
        if not isinstance(mode, str) or mode not in set(FaultMode):
            return _bad(f"mode must be one of {modes}")
        try:
            faults = sim.set_faults(mode, body.get("latency_ms", 0))
        except ValueError as exc:
            return _bad(str(exc))
        return web.json_response(faults.as_dict())

    async def get_commands(request: web.Request) -> web.StreamResponse:
        return web.json_response(sim.commands())

    async def reset(request: web.Request) -> web.StreamResponse:
        sim.reset()
        return web.Response(status=204)

    async def add_device(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if body is None or not isinstance(body.get("device_id"), str):
            return _bad('expected {"device_id": str, "kind": "door"|"barrier", "name": str}')
        online = body.get("online", True)
        if not isinstance(online, bool) or not isinstance(body.get("name", ""), str):
            return _bad("online must be a boolean and name a string")
        try:
            device = sim.add_device(
                body["device_id"], body.get("kind", "door"), body.get("name", ""), online=online
            )
        except ValueError as exc:
            return _bad(str(exc))
        return web.json_response(device, status=201)

    async def update_device(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        online, state = (body or {}).get("online"), (body or {}).get("state")
        if body is None or not isinstance(online, bool | None) or not isinstance(state, str | None):
            return _bad('expected {"online": bool, "state": str}, both optional')
        try:
            device = sim.update_device(request.match_info["device_id"], online=online, state=state)
        except VendorError as exc:
            return web.json_response(exc.body(), status=exc.status)
        return web.json_response(device)

    def passages(delay: float | None) -> dict[str, Any]:
        return {"after_open_ms": None if delay is None else round(delay * 1000)}

    async def flush_callbacks(request: web.Request) -> web.StreamResponse:
        await sim.settle()  # every callback made so far was delivered (or given up on)
        return web.Response(status=204)

    async def get_signatures(request: web.Request) -> web.StreamResponse:
        verifier = sim.signatures
        if verifier is None:
            return web.json_response({"required": False})
        return web.json_response({"required": True, **verifier.snapshot()})

    async def get_passages(request: web.Request) -> web.StreamResponse:
        return web.json_response(passages(sim.passage_delay))

    async def set_passages(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if body is None or set(body) - {"after_open_ms"}:
            return _bad('expected {"after_open_ms": int or null}')
        try:
            delay = sim.set_passages(body.get("after_open_ms"))
        except ValueError as exc:
            return _bad(str(exc))
        return web.json_response(passages(delay))

    async def post_event(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if (
            body is None
            or not isinstance(body.get("device_id"), str)
            or not isinstance(body.get("type"), str)
        ):
            return _bad('expected {"device_id": str, "type": str, ...other fields of the event}')
        fields = {k: v for k, v in body.items() if k not in ("device_id", "type")}
        # Queued behind the callbacks made so far, as the vendor's own events are.
        event = await sim.emit_event(body["device_id"], body["type"], **fields)
        return web.json_response(event, status=202)

    return [
        web.get("/sim/v1/faults", get_faults),
        web.post("/sim/v1/faults", set_faults),
        web.get("/sim/v1/commands", get_commands),
        web.post("/sim/v1/reset", reset),
        web.post("/sim/v1/devices", add_device),
        web.patch("/sim/v1/devices/{device_id}", update_device),
        web.get("/sim/v1/passages", get_passages),
        web.post("/sim/v1/callbacks/flush", flush_callbacks),
        web.post("/sim/v1/passages", set_passages),
        web.post("/sim/v1/events", post_event),
        web.get("/sim/v1/signatures", get_signatures),
    ]


def make_vendor_app(sim: VendorSimulator, *, api_key: str) -> web.Application:
    """The vendor's API and the control API of ``sim`` in one application."""
    if not api_key:
        raise ValueError("the vendor API needs an API key")
    app = web.Application(
        middlewares=[
            api_key_middleware(api_key=api_key),
            signature_middleware(sim, prefix=VENDOR_PREFIX, refusal=_vendor_signature_refusal),
        ]
    )
    app.add_routes(vendor_routes(sim))
    app.add_routes(control_routes(sim))
    return app
