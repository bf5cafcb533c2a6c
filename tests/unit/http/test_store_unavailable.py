"""A request that needs the database while it is down gets a clear 503, not a 500."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from propdev.http.middlewares import request_context_middleware
from propdev.registry.wire import decode_reply, encode_reply, pack, unpack
from propdev.storage import StoreUnavailableError

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


async def test_the_store_down_is_a_503_problem_with_retry_after(
    aiohttp_client: ClientFactory,
) -> None:
    async def needs_the_store(request: web.Request) -> web.Response:
        raise StoreUnavailableError("connection refused")

    app = web.Application(middlewares=[request_context_middleware(node_id="n1")])
    app.router.add_get("/needs-the-store", needs_the_store)
    client = await aiohttp_client(app)
    with capture_logs() as logs:
        resp = await client.get("/needs-the-store")
    assert resp.status == 503
    assert resp.content_type == "application/problem+json"
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert body["type"].endswith("/store-unavailable") and body["status"] == 503
    assert "connection refused" not in body["detail"]  # the driver's text stays in the log
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["store_unavailable"]
    assert not [e for e in logs if e["event"] == "request_failed"]


def test_the_owners_store_failure_is_raised_as_itself_at_the_asker() -> None:
    reply = unpack(pack(encode_reply(StoreUnavailableError("connection refused"))))
    with pytest.raises(StoreUnavailableError, match="connection refused"):
        decode_reply(reply)
