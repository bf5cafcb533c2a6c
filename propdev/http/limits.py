"""Request size and time limits, against oversized bodies and slow clients.

aiohttp reads request bodies lazily and has no deadline of its own for headers or bodies.
Here:

- ``body_limit_middleware``: a declared ``Content-Length`` above the limit is answered 413 at
  once, before a byte of the body is read; otherwise the body is read here, whole, within
  ``body_timeout`` seconds (408 and the connection closed when the client trickles), and a
  chunked body that grows past the limit is a 413. Handlers then parse the cached bytes.
- Headers: ``server_limits(settings)`` gives the ``AppRunner`` keyword arguments. aiohttp's
  keep-alive timer runs from the moment a connection is accepted (or its previous response
  was sent) until a complete request head has arrived, and is not reset by partial data; set
  to ``header_timeout`` it is the deadline for the request line and headers as well as the
  idle keep-alive time.
- WebSockets: ``WebSocketCaps`` counts open sockets per user; the frame size cap is the
  socket's ``max_msg_size``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from propdev.http.errors import ProblemError

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class PayloadTooLargeError(ProblemError):
    """Raised when a request body is larger than the limit."""

    status, kind, title = 413, "payload-too-large", "Payload too large"


class RequestTimeoutError(ProblemError):
    """Raised when a client does not send its body within the deadline."""

    status, kind, title = 408, "request-timeout", "Request timeout"


class TooManyConnectionsError(ProblemError):
    """Raised when a user already has the maximum number of open WebSockets."""

    status, kind, title = 429, "too-many-connections", "Too many connections"


def server_limits(*, header_timeout: float) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner``: the header deadline and header sizes."""
    return {
        "keepalive_timeout": header_timeout,
        "max_line_size": 8190,
        "max_field_size": 8190,
    }


def body_limit_middleware(*, max_body: int, body_timeout: float) -> Middleware:
    """413 for a body over ``max_body`` (before reading it), 408 for one slower than
    ``body_timeout``; otherwise the body is read and cached for the handler."""

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in _BODY_METHODS and request.can_read_body:
            length = request.content_length
            if length is not None and length > max_body:
                log.warning("body_refused", reason="too_large", declared=length)
                raise PayloadTooLargeError(
                    f"The body may be at most {max_body} bytes.", headers={"Connection": "close"}
                )
            try:
                async with asyncio.timeout(body_timeout):
                    await request.read()  # cached: request.post()/json() reuse it
            except TimeoutError:
                log.warning("body_refused", reason="too_slow")
                raise RequestTimeoutError(
                    f"The body must arrive within {body_timeout:g} seconds.",
                    headers={"Connection": "close"},
                ) from None
            except web.HTTPRequestEntityTooLarge:
                log.warning("body_refused", reason="too_large")
                raise PayloadTooLargeError(
                    f"The body may be at most {max_body} bytes.", headers={"Connection": "close"}
                ) from None
        return await handler(request)

    return impl


class WebSocketCaps:
    """At most ``per_user`` open sockets per user on this node."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: collections.Counter[str] = collections.Counter()

    def acquire(self, user: str) -> None:
        """Count one more socket for ``user``; raise ``TooManyConnectionsError`` at the cap."""
        if self._open[user] >= self.per_user:
            log.warning("ws_refused", reason="per_user_cap", cap=self.per_user)
            raise TooManyConnectionsError(
                f"At most {self.per_user} live connections per user.",
                headers={"Retry-After": "5"},
            )
        self._open[user] += 1

    def release(self, user: str) -> None:
        self._open[user] -= 1
        if self._open[user] <= 0:
            del self._open[user]

    def open_count(self, user: str) -> int:
        return self._open[user]


WS_CAPS: web.AppKey[WebSocketCaps] = web.AppKey("ws_caps", WebSocketCaps)
