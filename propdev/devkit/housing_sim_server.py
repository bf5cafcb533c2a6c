"""The simulated utilities system over HTTPS (``python run.py utilities-sim``).

Its API is described in ``housing_sim.py`` (``/hcs/v1``, ``X-Api-Key`` from
``<data dir>/partners/utilities/api-key``); beside it, a control API for tests without
authentication: ``GET|POST /sim/hcs/v1/faults`` (``{"mode": "ok"|"error"|"slow"|"outage",
"latency_ms": N}``), ``GET /sim/hcs/v1/readings`` (what was received, oldest first, with the
``idempotency_key``), ``POST /sim/hcs/v1/reset``. The server certificate is issued by the
project CA for 127.0.0.1 and localhost.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from propdev.config import Settings
from propdev.devkit.housing_sim import UtilitiesFault, UtilitiesSimulator
from propdev.devkit.sim_server import credential_middleware, drop
from propdev.housing import UPSTREAM, UpstreamDropped, UpstreamError
from propdev.http.body import parse_json
from propdev.partners import vendor_api_key
from propdev.pki import ensure_server_cert, server_context

DEFAULT_PORT = 9444
CERT_NAME = "utilities-sim"
CERT_HOSTS = ("127.0.0.1", "localhost")
API_PREFIX = "/hcs/v1/"
MAX_KEY = 255

log = structlog.get_logger()


def _error(exc: UpstreamError, request: web.Request) -> web.StreamResponse:
    if isinstance(exc, UpstreamDropped):
        return drop(request)
    return web.json_response(exc.body(), status=exc.status)


def _api_key_middleware(api_key: str) -> Middleware:
    return credential_middleware(
        prefix=API_PREFIX,
        header="X-Api-Key",
        expected=api_key,
        refusal={"error": "unauthorized", "message": "missing or wrong X-Api-Key"},
    )


def utilities_routes(sim: UtilitiesSimulator) -> list[web.RouteDef]:
    """The utilities system's API and its control API, answering from ``sim``."""

    async def bills(request: web.Request) -> web.StreamResponse:
        account_id = request.match_info["account_id"]
        try:
            found = await sim.bills(account_id, request.query.get("period"))
        except UpstreamError as exc:
            return _error(exc, request)
        return web.json_response({"account_id": account_id, "bills": found})

    async def readings(request: web.Request) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key", "")
        if not 0 < len(key) <= MAX_KEY:
            body = {"error": "invalid_request", "message": "Idempotency-Key is required"}
            return web.json_response(body, status=400)
        try:
            payload = parse_json(await request.read())
        except ValueError:
            payload = None
        replayed = sim.knows(key)
        try:
            answer = await sim.submit(request.match_info["account_id"], payload, key)
        except UpstreamError as exc:
            return _error(exc, request)
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return web.json_response(answer, status=201, headers=headers)

    async def get_faults(request: web.Request) -> web.StreamResponse:
        return web.json_response(sim.faults.as_dict())

    async def set_faults(request: web.Request) -> web.StreamResponse:
        try:
            body: Any = parse_json(await request.read())
        except ValueError:
            body = None
        modes = {str(m) for m in UtilitiesFault}
        if not isinstance(body, dict) or body.get("mode", "ok") not in modes:
            raise web.HTTPBadRequest(text=f"expected {{'mode': one of {sorted(modes)}}}")
        latency = body.get("latency_ms", 0)
        if not isinstance(latency, int) or isinstance(latency, bool) or not 0 <= latency <= 60000:
            raise web.HTTPBadRequest(text="latency_ms: 0 to 60000")
        sim.faults.mode = UtilitiesFault(body.get("mode", "ok"))
        sim.faults.latency_ms = latency
        return web.json_response(sim.faults.as_dict())

    async def received(request: web.Request) -> web.StreamResponse:
        return web.Response(text=json.dumps(sim.received), content_type="application/json")

    async def reset(request: web.Request) -> web.StreamResponse:
        sim.reset()
        return web.Response(status=204)

    return [
        web.get("/hcs/v1/accounts/{account_id}/bills", bills),
        web.post("/hcs/v1/accounts/{account_id}/readings", readings),
        web.get("/sim/hcs/v1/faults", get_faults),
        web.post("/sim/hcs/v1/faults", set_faults),
        web.get("/sim/hcs/v1/readings", received),
        web.post("/sim/hcs/v1/reset", reset),
    ]


@dataclass(slots=True)
class UtilitiesSimServer:
    url: str
    sim: UtilitiesSimulator
    runner: web.AppRunner

    async def close(self) -> None:
        await self.runner.cleanup()


async def run_utilities_sim(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    sim: UtilitiesSimulator | None = None,
) -> UtilitiesSimServer:
    """Start the simulated utilities system over HTTPS; ``port=0`` picks a free port."""
    sim = sim or UtilitiesSimulator()
    cert = ensure_server_cert(settings.pki_dir, CERT_HOSTS, name=CERT_NAME)
    app = web.Application(
        middlewares=[_api_key_middleware(vendor_api_key(settings.data_dir, UPSTREAM))]
    )
    app.add_routes(utilities_routes(sim))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=server_context(settings.pki_dir, cert))
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    url_host = f"[{host}]" if ":" in host else host
    return UtilitiesSimServer(f"https://{url_host}:{bound}", sim, runner)


async def serve_housing_sim(
    settings: Settings, port: int = DEFAULT_PORT, *, host: str = "127.0.0.1"
) -> None:
    """Run the simulated utilities system until cancelled; always closes cleanly."""
    server = await run_utilities_sim(settings, host=host, port=port)
    log.info("utilities_sim_started", url=server.url)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
        log.info("utilities_sim_stopped", url=server.url)
