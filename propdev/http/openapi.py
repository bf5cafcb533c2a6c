"""Route declarations for the OpenAPI 3.1 document: ``@doc`` next to each handler.

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
control API), are declared in ``propdev.http.openapi_external`` by (method, path).
``propdev.http.openapi_document`` builds the document from both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from propdev.http.body import MAX_DEPTH
from propdev.http.permissions import Permission
from propdev.http.schemas import PROBLEM, JSONSchema

H = TypeVar("H", bound=Callable[..., Any])

ATTR = "__propdev_openapi__"
PROBLEM_JSON = "application/problem+json"
_STRICT_JSON = (
    "`application/json` (or `application/*+json`), UTF-8. Refused with 400: invalid JSON or "
    f"UTF-8, more than {MAX_DEPTH} levels of nested arrays and objects, a key twice in one "
    "object, `NaN`/`Infinity`."
)
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


_UNSUPPORTED_JSON = Response(
    PROBLEM,
    "The body is not declared `application/json` (or `application/*+json`) in UTF-8.",
    PROBLEM_JSON,
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


__all__ = (
    "ATTR",
    "JSON",
    "PROBLEM_JSON",
    "Operation",
    "Param",
    "Response",
    "doc",
    "operation",
    "operation_of",
)
