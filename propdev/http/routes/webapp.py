"""The resident web app: its page (``/app/``) and its script and style sheet.

The page is public (it holds no data). It signs the resident in with the authorization code +
PKCE flow as the public client ``resident-web`` (registered at every node's start with the
redirect ``<public url>/app/``), keeps the tokens in memory and calls the resident API and
``/api/v1/ws`` (token as the subprotocol pair ``bearer, <token>``) with them.
"""

from __future__ import annotations

import functools
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web

from propdev.http.keys import PUBLIC_URL
from propdev.http.openapi import Response, doc
from propdev.http.permissions import Permission, requires

routes = web.RouteTableDef()

APP_FILES = resources.files("propdev.webapp")
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}


def web_app_csp(public_url: str) -> str:
    """The page's policy: its own script and style sheet only (nothing inline), calls to this
    origin only, the WebSocket included (``wss:`` of the public URL spelt out for browsers
    whose ``'self'`` does not cover it)."""
    parts = urlsplit(public_url)
    live = f"wss://{parts.netloc}" if parts.scheme == "https" else f"ws://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {live}; manifest-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    )


@functools.cache
def _file(name: str) -> bytes:
    return (APP_FILES / name).read_bytes()


@routes.get("/app")
@requires(Permission.PUBLIC)
@doc(
    "The resident web app (redirect to `/app/`)",
    tags=["web app"],
    responses={301: Response(None, "To `/app/`.", headers={"Location": "`/app/`"})},
)
async def web_app_redirect(request: web.Request) -> web.Response:
    return web.Response(status=301, headers={"Location": "/app/"})


@routes.get("/app/")
@requires(Permission.PUBLIC)
@doc(
    "The resident web app: a page for residents",
    description=(
        "Signs the resident in (code + PKCE, client `resident-web`) and shows their doors with "
        "their online state, opens them, lists live events, guest passes and vehicles."
    ),
    tags=["web app"],
    responses={200: Response({"type": "string"}, "The web app's page.", "text/html")},
)
async def web_app_page(request: web.Request) -> web.Response:
    return web.Response(
        body=_file("index.html"),
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": web_app_csp(request.app[PUBLIC_URL]),
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",  # the login's code comes back in this page's URL
        },
    )


@routes.get("/app/static/{name}")
@requires(Permission.PUBLIC)
@doc(
    "The web app's script and style sheet",
    tags=["web app"],
    responses={200: Response({"type": "string"}, "The file.", "*/*"), 404: "No such file."},
)
async def web_app_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = STATIC.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text="No such file.")
    return web.Response(
        body=_file(name), content_type=content_type, headers={"Cache-Control": "no-cache"}
    )
