"""The baseline: a bare aiohttp JSON hello-world over TLS (access log off).

    python bench/hello_server.py PORT CERT KEY

Answers `GET /` and `GET /healthz` with `{"ok": true}`.
"""

from __future__ import annotations

import ssl
import sys

from aiohttp import web


async def hello(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def main() -> None:
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/healthz", hello)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=context, access_log=None, print=None)


if __name__ == "__main__":
    main()
