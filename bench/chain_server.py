"""The bare two-hop chain's front: aiohttp server -> one aiohttp ClientSession -> the vendor.

    PROPDEV_BENCH_VENDOR_KEY=... python bench/chain_server.py PORT CERT KEY CA SIM_URL MOCK_URL

``POST /chain/{upstream}/{device_id}`` forwards as ``POST {URL}/vendor/v1/devices/{device_id}/open``
to ``sim`` (SIM_URL, the vendor simulator) or ``mock`` (MOCK_URL, ``bench/mock_vendor.py``) with a
fresh ``Idempotency-Key`` and the vendor's ``X-Api-Key`` (from the environment, never the
command line), over TLS verified against CA, on one keep-alive session (the same connection
limit as the node's vendor adapter), and answers the vendor's status and JSON body. ``GET
/healthz`` answers ``{"ok": true}``. Nothing else: no auth, no log, no database; the baseline
for the node's door open with the vendor as its own process.
"""

from __future__ import annotations

import os
import ssl
import sys
import uuid
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
CONNECTIONS = 64  # propdev.partners.VendorHttpAdapter's default max_connections


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_app(upstreams: dict[str, str], ca: str, api_key: str) -> web.Application:
    bases = {name: url.rstrip("/") + "/vendor/v1/devices/" for name, url in upstreams.items()}

    async def forward(request: web.Request) -> web.Response:
        url = bases[request.match_info["upstream"]] + request.match_info["device_id"] + "/open"
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        async with request.app[SESSION].post(url, headers=headers) as resp:
            body = await resp.read()
            return web.Response(body=body, status=resp.status, content_type="application/json")

    async def session(app: web.Application) -> AsyncIterator[None]:
        context = ssl.create_default_context(cafile=ca)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=CONNECTIONS),
            headers={"X-Api-Key": api_key, "Accept": "application/json"},
        ) as client:
            app[SESSION] = client
            yield

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/chain/{upstream:sim|mock}/{device_id}", forward)
    return app


def main() -> None:
    port, cert, key, ca, sim_url, mock_url = sys.argv[1:7]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    upstreams = {"sim": sim_url, "mock": mock_url}
    app = make_app(upstreams, ca, os.environ["PROPDEV_BENCH_VENDOR_KEY"])
    web.run_app(
        app, host="127.0.0.1", port=int(port), ssl_context=context, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
