"""Every route declares who may call it; a route without a declaration is refused (and a test
walks the router to prove none is missing).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])

ATTR = "__propdev_permission__"


class Permission(enum.Enum):
    PUBLIC = "public"  # no token (health, discovery, login)
    AUTHENTICATED = "authenticated"  # any valid access token
    RESIDENT = "resident"  # role resident
    OPERATOR = "operator"  # role operator AND otp in amr
    PARTNER = "partner"  # partner client (mTLS; finished by the security issue)


def requires(permission: Permission) -> Callable[[H], H]:
    """Declare the permission a handler needs."""

    def mark(handler: H) -> H:
        setattr(handler, ATTR, permission)
        return handler

    return mark


def permission_of(handler: Any) -> Permission | None:
    return getattr(handler, ATTR, None)
