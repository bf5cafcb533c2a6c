from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from propdev.http.errors import ForbiddenError
from propdev.http.integration_log import integration_api, integration_log_middleware, outcome_of
from propdev.http.middlewares import request_context_middleware

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/partner/v1/events", "partner"),
        ("/gateway/v1/utilities/bills", "gateway"),
        ("/admin", "admin"),
        ("/admin/api/v1/nodes", "admin"),
        ("/administrator", None),
        ("/api/v1/me", None),
        ("/oauth/token", None),
    ],
)
def test_integration_apis_are_known_by_prefix(path: str, api: str | None) -> None:
    assert integration_api(path) == api


def test_outcomes_split_at_400_and_500() -> None:
    assert [outcome_of(s) for s in (200, 302, 403, 429, 500, 503)] == [
        "ok",
        "ok",
        "rejected",
        "rejected",
        "failed",
        "failed",
    ]


async def test_errors_are_recorded_with_their_status_and_passed_on(
    aiohttp_client: ClientFactory,
) -> None:
    async def refused(request: web.Request) -> web.Response:
        raise ForbiddenError("no")

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("boom")

    async def fine(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(
        middlewares=[request_context_middleware(node_id="n1"), integration_log_middleware()]
    )
    app.router.add_get("/admin/api/v1/refused", refused)
    app.router.add_get("/partner/v1/broken/{id}", broken)
    app.router.add_get("/gateway/v1/fine", fine)
    app.router.add_get("/api/v1/fine", fine)
    client = await aiohttp_client(app)
    with capture_logs() as logs:
        assert (await client.get("/admin/api/v1/refused")).status == 403
        assert (await client.get("/partner/v1/broken/42?token=secret")).status == 500
        assert (await client.get("/gateway/v1/fine")).status == 200
        assert (await client.get("/api/v1/fine")).status == 200
    records = [r for r in logs if r["event"] == "integration_request"]
    assert [(r["api"], r["status"], r["outcome"]) for r in records] == [
        ("admin", 403, "rejected"),
        ("partner", 500, "failed"),
        ("gateway", 200, "ok"),
    ]
    assert records[1]["route"] == "/partner/v1/broken/{id}"  # the template, not the path
    assert "secret" not in repr(records)
    assert records[2]["bytes_out"] == len(b'{"ok": true}')
