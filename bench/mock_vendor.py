"""The bare chain's tiny mock vendor: the vendor API's open answer, nothing else, over TLS.

    python bench/mock_vendor.py PORT CERT KEY

``POST /vendor/v1/devices/{device_id}/open`` answers 200 with the vendor's JSON (a fresh
command id, ``opened``, now); ``GET /healthz`` ``{"ok": true}``. No key check, no state.
"""

from __future__ import annotations

import datetime as dt
import ssl
import sys
import uuid

from aiohttp import web


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def open_device(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "device_id": request.match_info["device_id"],
            "command_id": uuid.uuid4().hex,
            "status": "opened",
            "confirmed_at": dt.datetime.now(dt.UTC).isoformat(),
        }
    )


def main() -> None:
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/vendor/v1/devices/{device_id}/open", open_device)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=context, access_log=None, print=None)


if __name__ == "__main__":
    main()
