"""``/openapi.json`` (generated from the router) and ``/docs`` (Swagger UI from local files)."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from aiohttp import web

from propdev.http.keys import PUBLIC_URL
from propdev.http.openapi import Response, doc
from propdev.http.openapi_document import build_document
from propdev.http.permissions import Permission, requires
from propdev.http.schemas import ANY_OBJECT

routes = web.RouteTableDef()

OUR_STATIC = resources.files("propdev.http") / "static"

# The page's own scripts and styles only; Swagger UI sets inline styles on its elements.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
STATIC_CACHE = "public, max-age=3600"


def _swagger_dir() -> Path:
    import swagger_ui  # swagger-ui-py ships Swagger UI 5's built files

    return Path(swagger_ui.__file__).parent / "static"


SWAGGER_FILES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
OUR_FILES = {"docs-init.js": "text/javascript"}


@routes.get("/openapi.json")
@requires(Permission.PUBLIC)
@doc(
    "This document: OpenAPI 3.1, generated from the route declarations",
    tags=["operations"],
    responses={200: ANY_OBJECT},
)
async def openapi_json(request: web.Request) -> web.Response:
    document = build_document(request.app, server_url=request.app[PUBLIC_URL])
    return web.json_response(document, headers={"Cache-Control": "no-cache"})


@routes.get("/docs")
@requires(Permission.PUBLIC)
@doc(
    "Swagger UI for this document (served from local files)",
    tags=["operations"],
    responses={200: Response({"type": "string"}, "The Swagger UI page.", "text/html")},
)
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(
        body=_file("docs.html"),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": DOCS_CSP, "X-Frame-Options": "DENY"},
    )


@routes.get("/docs/{name}")
@requires(Permission.PUBLIC)
@doc(
    "Swagger UI's static files",
    tags=["operations"],
    responses={
        200: Response({"type": "string"}, "The file.", "*/*"),
        404: "No such file.",
    },
)
async def docs_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = OUR_FILES.get(name) or SWAGGER_FILES.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text="No such file.")
    return web.Response(
        body=_file(name), content_type=content_type, headers={"Cache-Control": STATIC_CACHE}
    )


@functools.cache
def _file(name: str) -> bytes:
    """A file of ours or of Swagger UI's, read once (names come from the lists above only)."""
    if name in SWAGGER_FILES:
        return (_swagger_dir() / name).read_bytes()
    return (OUR_STATIC / name).read_bytes()
