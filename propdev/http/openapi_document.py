"""The OpenAPI 3.1 document, generated from the route declarations (``propdev.http.openapi``).

``build_document(app)`` walks ``app.router``: the path and its parameters from the resource,
the security from the permission, the rest from the declaration (or, for the routes other
packages build, from ``propdev.http.openapi_external``). It adds what the middlewares answer on
their own: 401/403 for routes with a token, 429 when rate-limited, 400 when the call takes a
body or query parameters. ``undocumented(app)`` names the routes without a declaration; a
contract test keeps it empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from aiohttp import web

from propdev.http import schemas
from propdev.http.openapi import PROBLEM_JSON, Operation, Response, operation_of
from propdev.http.openapi_external import EXTERNAL
from propdev.http.permissions import Permission, permission_of
from propdev.http.schemas import PROBLEM

# -- security --------------------------------------------------------------------------------

SECURITY_SCHEMES: dict[str, Any] = {
    "residentToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "An access token (PS256 JWT) from the authorization code + PKCE flow at "
            "`/oauth/authorize`; resident routes need `resident` in its `roles`."
        ),
    },
    "operatorToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "An operator's access token: `operator` (or `admin`) in `roles` AND `otp` in `amr` "
            "(the login included the TOTP step); any other token gets 403."
        ),
    },
    "partnerCertificate": {
        "type": "mutualTLS",
        "description": "The partner's client certificate, issued by the project CA.",
    },
    "partnerToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "A `client_credentials` token bound to the client certificate (`cnf.x5t#S256`); "
            "accepted only over a connection presenting that certificate, from an allowed network."
        ),
    },
}

_SECURITY: dict[Permission, list[dict[str, list[str]]]] = {
    Permission.PUBLIC: [],
    Permission.AUTHENTICATED: [{"residentToken": []}, {"operatorToken": []}],
    Permission.RESIDENT: [{"residentToken": []}],
    Permission.OPERATOR: [{"operatorToken": []}],
    Permission.PARTNER: [{"partnerCertificate": [], "partnerToken": []}],
}

_AUTH_ERRORS = {
    401: Response(
        PROBLEM,
        "No valid access token.",
        PROBLEM_JSON,
        {"WWW-Authenticate": "the bearer challenge"},
    ),
    403: Response(PROBLEM, "The token does not allow this call.", PROBLEM_JSON),
}
_RATE_LIMITED = Response(
    PROBLEM, "Rate limit exceeded.", PROBLEM_JSON, {"Retry-After": "seconds to wait"}
)
_BAD_REQUEST = Response(PROBLEM, "The request is malformed.", PROBLEM_JSON)

# -- the generator ---------------------------------------------------------------------------

_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


@dataclass(frozen=True, slots=True)
class RouteDoc:
    method: str
    path: str
    permission: Permission | None
    operation: Operation | None


def route_docs(app: web.Application) -> list[RouteDoc]:
    """Every route of the router with its declaration (``None`` when it has none).

    ``HEAD`` routes that aiohttp adds beside a ``GET`` are left out: the ``GET`` covers them.
    """
    found: list[RouteDoc] = []
    seen_get: set[str] = set()
    routes = [r for r in app.router.routes() if r.resource is not None]
    for route in routes:
        if route.method == "GET":
            assert route.resource is not None
            seen_get.add(route.resource.canonical)
    for route in routes:
        assert route.resource is not None
        path = route.resource.canonical
        if route.method == "HEAD" and path in seen_get:
            continue
        op = operation_of(route.handler) or EXTERNAL.get((route.method, path))
        found.append(RouteDoc(route.method, path, permission_of(route.handler), op))
    return found


def undocumented(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every route without documentation."""
    return [(r.method, r.path) for r in route_docs(app) if r.operation is None]


def build_document(app: web.Application, *, server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in route_docs(app):
        if route.operation is None or route.method == "*":
            continue
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    try:
        version = metadata.version("propdev")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "0.0.0"
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "propdev",
            "version": version,
            "description": (
                "The integration hub of a residential property developer: residents open doors "
                "and barriers, partners call back, operators supervise. Errors are "
                "`application/problem+json` (RFC 9457)."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.COMPONENTS.items())),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


def _operation(route: RouteDoc) -> dict[str, Any]:
    op = route.operation
    assert op is not None
    permission = op.security or route.permission or Permission.PUBLIC
    out: dict[str, Any] = {
        "operationId": _operation_id(route.method, route.path),
        "summary": op.summary,
    }
    if op.description:
        out["description"] = op.description
    if op.tags:
        out["tags"] = list(op.tags)
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    for p in op.params:
        param: dict[str, Any] = {"name": p.name, "in": p.where, "required": p.required}
        param["schema"] = p.schema
        if p.description:
            param["description"] = p.description
        params.append(param)
    if params:
        out["parameters"] = params
    if op.request is not None:
        out["requestBody"] = {
            "required": op.request_required,
            "content": {op.request_content_type: {"schema": op.request}},
        }
        if op.request_description:
            out["requestBody"]["description"] = op.request_description
    responses = dict(op.responses)
    if permission is not Permission.PUBLIC:
        for status, response in _AUTH_ERRORS.items():
            responses.setdefault(status, response)
    if op.rate_limited:
        responses.setdefault(429, _RATE_LIMITED)
    if op.request is not None or any(p.where == "query" for p in op.params) or op.websocket:
        responses.setdefault(400, _BAD_REQUEST)
    out["responses"] = {
        str(status): _response_object(status, responses[status]) for status in sorted(responses)
    }
    out["security"] = _SECURITY[permission]
    out["x-permission"] = permission.value
    if op.websocket:
        out["x-websocket"] = True
    out.update(op.extra)
    return out


def _response_object(status: int, response: Response) -> dict[str, Any]:
    out: dict[str, Any] = {"description": response.description or _REASONS.get(status, "")}
    if response.schema is not None:
        out["content"] = {response.content_type: {"schema": response.schema}}
    if response.headers:
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in response.headers.items()
        }
    return out


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path.replace("{", "by_").replace("}", "")).strip("_")
    if path.endswith("/") and len(path) > 1:
        words += "_index"
    return f"{method.lower()}_{words or 'root'}"


_REASONS = {
    101: "Switching Protocols: the WebSocket is open.",
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


__all__ = (
    "SECURITY_SCHEMES",
    "RouteDoc",
    "build_document",
    "route_docs",
    "undocumented",
)
