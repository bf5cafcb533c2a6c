"""The OpenAPI 3.1 document, generated from the route declarations.

Every handler declares its documentation next to its permission::

    @routes.post("/api/v1/access-points/{id}/open")
    @requires(Permission.RESIDENT)
    @doc(
        "Open an access point",
        tags=["resident"],
        responses={200: OPEN_GRANTED, 404: "No such access point.", 503: "Circuit open."},
    )
    async def open_access_point(request): ...

``responses`` maps a status to a JSON Schema (a dict, often a ``schemas.named`` ref), a
``Response`` for full control, ``None`` for an empty answer, or a string: the description of a
problem+json answer (any status >= 400 answers ``application/problem+json`` with the shared
``Problem`` schema unless told otherwise). The generator adds what the middlewares answer on
their own: 401/403 for routes with a token, 429 when rate-limited, 400 when the call takes a
body or query parameters.

Routes of other packages, wrapped by ``app.public_routes`` (the OAuth server, the simulator's
control API), are documented in ``propdev.http.openapi_external`` by (method, path).

``build_document(app)`` walks ``app.router``: the path and its parameters from the resource,
the security from the permission, the rest from the declaration. ``undocumented(app)`` names
the routes without one; a contract test keeps it empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, TypeVar

from aiohttp import web

from propdev.http import schemas
from propdev.http.body import MAX_DEPTH
from propdev.http.permissions import Permission, permission_of
from propdev.http.schemas import PROBLEM, JSONSchema

H = TypeVar("H", bound=Callable[..., Any])

ATTR = "__propdev_openapi__"
PROBLEM_JSON = "application/problem+json"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Response:
    """One documented answer. ``schema=None`` means no body."""

    schema: JSONSchema | None = None
    description: str = ""
    content_type: str = JSON
    headers: Mapping[str, str] = field(default_factory=dict)  # header name -> description


@dataclass(frozen=True, slots=True)
class Param:
    """A query or header parameter (path parameters come from the route itself)."""

    name: str
    schema: JSONSchema = field(default_factory=lambda: {"type": "string"})
    where: Literal["query", "header", "cookie"] = "query"
    required: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """A handler's documentation, as ``@doc`` stored it."""

    summary: str
    description: str = ""
    tags: tuple[str, ...] = ()
    request: JSONSchema | None = None
    request_content_type: str = JSON
    request_required: bool = True
    request_description: str = ""
    responses: Mapping[int, Response] = field(default_factory=dict)
    params: tuple[Param, ...] = ()
    websocket: bool = False
    rate_limited: bool = True
    security: Permission | None = None  # overrides the route's permission in the document
    extra: Mapping[str, Any] = field(default_factory=dict)  # raw OpenAPI keys (x-..., callbacks)


def _response(status: int, spec: Response | JSONSchema | str | None) -> Response:
    if isinstance(spec, Response):
        return spec
    if isinstance(spec, str):
        return Response(PROBLEM, spec, PROBLEM_JSON)
    if spec is None:
        return Response(None, "")
    return Response(spec, "", PROBLEM_JSON if status >= 400 else JSON)


def operation(
    summary: str,
    *,
    description: str = "",
    tags: Sequence[str] = (),
    request: JSONSchema | None = None,
    request_content_type: str = JSON,
    request_required: bool = True,
    request_description: str = "",
    responses: Mapping[int, Response | JSONSchema | str | None] | None = None,
    query: Iterable[Param] = (),
    headers: Iterable[Param] = (),
    websocket: bool = False,
    rate_limited: bool = True,
    security: Permission | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Operation:
    """An ``Operation`` from ``doc``'s arguments (also used for the external table)."""
    params = [
        *query,
        *(Param(h.name, h.schema, "header", h.required, h.description) for h in headers),
    ]
    return Operation(
        summary=summary,
        description=description,
        tags=tuple(tags),
        request=request,
        request_content_type=request_content_type,
        request_required=request_required,
        request_description=request_description,
        responses={s: _response(s, r) for s, r in (responses or {200: None}).items()},
        params=tuple(params),
        websocket=websocket,
        rate_limited=rate_limited,
        security=security,
        extra=dict(extra or {}),
    )


def doc(
    summary: str,
    *,
    description: str = "",
    tags: Sequence[str] = (),
    request: JSONSchema | None = None,
    request_content_type: str = JSON,
    request_required: bool = True,
    responses: Mapping[int, Response | JSONSchema | str | None] | None = None,
    query: Iterable[Param] = (),
    headers: Iterable[Param] = (),
    websocket: bool = False,
    rate_limited: bool = True,
    security: Permission | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Callable[[H], H]:
    """Declare a handler's OpenAPI operation (see the module docstring). A JSON request body
    is read by ``propdev.http.body.json_body``: the document says what that reader refuses."""
    strict_json = request is not None and request_content_type == JSON
    if strict_json:
        responses = {415: _UNSUPPORTED_JSON, **(responses or {200: None})}
    op = operation(
        summary,
        description=description,
        tags=tags,
        request=request,
        request_content_type=request_content_type,
        request_required=request_required,
        request_description=_STRICT_JSON if strict_json else "",
        responses=responses,
        query=query,
        headers=headers,
        websocket=websocket,
        rate_limited=rate_limited,
        security=security,
        extra=extra,
    )

    def mark(handler: H) -> H:
        setattr(handler, ATTR, op)
        return handler

    return mark


def operation_of(handler: Any) -> Operation | None:
    found = getattr(handler, ATTR, None)
    return found if isinstance(found, Operation) else None


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
_STRICT_JSON = (
    "`application/json` (or `application/*+json`), UTF-8. Refused with 400: invalid JSON or "
    f"UTF-8, more than {MAX_DEPTH} levels of nested arrays and objects, a key twice in one "
    "object, `NaN`/`Infinity`."
)
_UNSUPPORTED_JSON = Response(
    PROBLEM,
    "The body is not declared `application/json` (or `application/*+json`) in UTF-8.",
    PROBLEM_JSON,
)

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
    from propdev.http.openapi_external import EXTERNAL

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
    "ATTR",
    "JSON",
    "PROBLEM_JSON",
    "Operation",
    "Param",
    "Response",
    "RouteDoc",
    "build_document",
    "doc",
    "operation",
    "operation_of",
    "route_docs",
    "undocumented",
)
