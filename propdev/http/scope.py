"""Staff scope at the HTTP edge: every staff route declares, with ``@scoped``, the action it
does (``propdev.staff.Action``) and where to find the resource it touches; one middleware
enforces it for every route, before the handler runs:

1. the caller's scope is read (``Staff.scope_of``: roles and sites from the store, so a change
   or a disabled account counts at the next call); no scope (not staff, disabled) is a 403;
2. the role must allow the action (``propdev.staff.MATRIX``), else 403;
3. each resource the route names (a path, query or body field, ``At``) must be in scope, else
   404, as if it did not exist; ``ORGANISATION_ONLY`` routes (partners, node drain, new sites)
   take organisation-wide staff only (403);
4. the scope is kept on the request (``scope_of(request)``): lists filter by it.

A staff route without a declaration is refused (and ``tests/unit/http/test_scope_coverage``
walks the router to prove none is missing).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from propdev.http.body import json_body
from propdev.http.errors import ForbiddenError, NotFoundError, ProblemError
from propdev.http.keys import STAFF
from propdev.http.middlewares import PRINCIPAL
from propdev.http.permissions import Permission, permission_of, requires
from propdev.staff import EVERYTHING, Action, Kind, Scope, Visible

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])

ATTR = "__propdev_scope__"
SCOPE: web.RequestKey[Scope] = web.RequestKey("staff_scope")


class Source(enum.Enum):
    PATH = "path"
    QUERY = "query"
    BODY = "body"


@dataclass(frozen=True, slots=True)
class At:
    """A resource the route names: the ``kind`` whose id is the ``field`` of ``source``."""

    kind: Kind
    field: str = "id"
    source: Source = Source.PATH


ORGANISATION_ONLY = "organisation"
"""A route about the organisation itself: organisation-wide staff only."""
LISTED = "listed"
"""A route that names no resource of a site: a list (filtered by the scope) or the caller's own."""
OWN = "own"
"""A route naming, by id, a resource of the caller's own account (a push token): no site's; the
handler finds it among the caller's (another account's id is a 404 there)."""

Where = At | str


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    where: tuple[Where, ...]


def scoped(action: Action, *where: Where) -> Callable[[H], H]:
    """Declare a staff route: the ``action`` it does, and where its resources are (``At``,
    ``ORGANISATION_ONLY``, ``LISTED`` or ``OWN``). Implies ``Permission.OPERATOR`` (staff with
    2FA)."""
    if not where:
        raise ValueError("say where the resource is (At(...), ORGANISATION_ONLY, LISTED or OWN)")

    def mark(handler: H) -> H:
        setattr(handler, ATTR, Rule(action, tuple(where)))
        return requires(Permission.OPERATOR)(handler)

    return mark


def rule_of(handler: Any) -> Rule | None:
    return getattr(handler, ATTR, None)


def scope_of(request: web.Request) -> Scope:
    """The calling staff member's scope (set by the middleware on every staff route)."""
    found: Scope | None = request.get(SCOPE)
    if found is None:
        raise ForbiddenError("This route declares no staff scope.")
    return found


async def visible_to(request: web.Request) -> Visible:
    """What the caller's scope lets them see in lists by id (everything: organisation-wide)."""
    scope = scope_of(request)
    if scope.organisation_wide:
        return EVERYTHING
    return await request.app[STAFF].visible(scope)


def scope_middleware() -> Middleware:
    """Enforce each staff route's ``Rule`` (see the module docstring). After the auth
    middleware: the principal is known."""

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            return await handler(request)
        target = request.match_info.handler
        if permission_of(target) is not Permission.OPERATOR:
            return await handler(request)
        rule = rule_of(target)
        if rule is None:
            log.error("route_without_scope", path=request.path)
            raise ForbiddenError("This route declares no staff scope.")
        caller = request[PRINCIPAL]
        staff = request.app[STAFF]
        scope = await staff.scope_of(caller.sub, caller.roles)
        if scope is None:
            raise ForbiddenError("This account is not an active staff account.")
        if not scope.may(rule.action):
            raise ForbiddenError(f"Your role may not do {rule.action.value!r}.")
        for where in rule.where:
            if where == ORGANISATION_ONLY:
                if not scope.organisation_wide:
                    raise ForbiddenError("Only organisation-wide staff may do this.")
            elif isinstance(where, At):
                ident = await _ident(request, where)
                if ident is None:
                    continue
                place = await staff.place(where.kind, ident)
                if place is not None and not scope.reaches(place):
                    raise NotFoundError(f"No {where.kind.value.replace('_', ' ')} {ident!r}.")
        request[SCOPE] = scope
        return await handler(request)

    return impl


async def _ident(request: web.Request, at: At) -> str | None:
    if at.source is Source.PATH:
        return request.match_info.get(at.field)
    if at.source is Source.QUERY:
        return request.query.get(at.field) or None
    try:
        body = await json_body(request, required=False)
    except ProblemError:
        return None  # the handler answers the malformed body
    value = body.get(at.field) if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None
