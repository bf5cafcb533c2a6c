"""What the simulators' HTTPS servers share: a dropped connection and the API credential check.

``drop(request)`` closes the connection without an answer (faults ``drop`` and ``outage``).
``credential_middleware`` answers 401 with the simulator's own error body to a call under
``prefix`` whose ``header`` is not ``expected`` (compared in constant time).
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware


def drop(request: web.Request) -> web.StreamResponse:
    """Close the connection; the answer returned never reaches the client."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


def credential_middleware(
    *, prefix: str, header: str, expected: str, refusal: dict[str, Any]
) -> Middleware:
    """401 ``refusal`` for calls under ``prefix`` without ``header: expected``."""
    want = expected.encode()

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(prefix):
            given = request.headers.get(header, "").encode()
            if not hmac.compare_digest(given, want):
                return web.json_response(refusal, status=401)
        return await handler(request)

    return impl
