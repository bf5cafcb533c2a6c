"""Admission control on its own: requests past the budget wait in a bounded line, and past the
line (or their wait) are shed with 503 and ``Retry-After``; probes and sockets are exempt."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from propdev.http.admission import Admission, Budget, ShedError, admission_middleware
from propdev.http.middlewares import request_context_middleware
from tests.support.eventually import eventually


async def test_a_budget_hands_a_freed_slot_to_the_first_in_line() -> None:
    budget = Budget("api", limit=1, queue=2, wait=30.0)
    await budget.acquire()
    second = asyncio.create_task(budget.acquire())
    third = asyncio.create_task(budget.acquire())
    await eventually(lambda: _waiting(budget, 2), within=5.0, what="two in line")
    with pytest.raises(ShedError) as shed:
        await budget.acquire()  # the line is full
    assert shed.value.status == 503 and shed.value.headers == {"Retry-After": "30"}
    assert shed.value.extra == {"budget": "api", "reason": "queue_full"}
    budget.release()
    await second
    assert not third.done() and budget.statistics() == (1, 1, 1, 2)
    budget.release()
    await third
    budget.release()
    assert budget.statistics() == (0, 1, 0, 2)


async def _waiting(budget: Budget, n: int) -> bool:
    return budget.statistics().waiting == n


async def test_a_request_that_waits_its_time_out_is_shed_and_leaves_the_line() -> None:
    budget = Budget("api", limit=1, queue=1, wait=0.0)
    await budget.acquire()
    with pytest.raises(ShedError) as shed:
        await budget.acquire()
    assert shed.value.extra["reason"] == "queue_timeout"
    assert shed.value.headers["Retry-After"] == "1"  # whole seconds, at least one
    assert budget.statistics() == (1, 1, 0, 1)


async def test_a_cancelled_waiter_leaves_the_line_without_taking_a_slot() -> None:
    budget = Budget("api", limit=1, queue=1, wait=30.0)
    await budget.acquire()
    waiting = asyncio.create_task(budget.acquire())
    await eventually(lambda: _waiting(budget, 1), within=5.0, what="one in line")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    budget.release()
    assert budget.statistics() == (0, 1, 0, 1)


def test_probes_metrics_and_sockets_are_exempt_and_partners_have_their_own_budget() -> None:
    admission = Admission(limit=8)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert admission.budget_for(path) is None
    for path in ("/api/v1/ws", "/admin/api/v1/ws"):  # a socket would hold its slot for hours
        assert admission.budget_for(path, websocket=True) is None
    assert admission.budget_for("/partner/v1/events") is admission.partner
    assert admission.budget_for("/api/v1/access-points/a/open") is admission.api
    assert (admission.api.limit, admission.api.queue) == (8, 8)  # sheds at twice the limit
    assert (admission.partner.limit, admission.partner.queue) == (2, 2)
    with pytest.raises(ValueError):
        Budget("api", limit=0, queue=0, wait=1.0)


async def test_past_the_budget_requests_get_a_503_problem_and_health_still_answers(
    aiohttp_client: Any,
) -> None:
    held = asyncio.Event()
    entered: list[str] = []
    shed: list[tuple[str, str]] = []

    async def slow(request: web.Request) -> web.Response:
        entered.append(request.path)
        await held.wait()
        return web.json_response({})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello")
        await ws.close()
        return ws

    app = web.Application(
        middlewares=[
            request_context_middleware(node_id="n1"),
            admission_middleware(
                admission=Admission(limit=2, queue=0, wait=1.0),
                on_shed=lambda budget, reason: shed.append((budget, reason)),
            ),
        ]
    )
    app.router.add_get("/api/v1/slow", slow)
    app.router.add_get("/healthz", health)
    app.router.add_get("/api/v1/ws", socket)
    client = await aiohttp_client(app)
    holding = [asyncio.create_task(client.get("/api/v1/slow")) for _ in range(2)]
    await eventually(lambda: _entered(entered, 2), within=5.0, what="two requests in flight")

    refused = await client.get("/api/v1/slow")
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.content_type == "application/problem+json"
    problem = await refused.json()
    assert problem["type"].endswith("/overloaded") and problem["reason"] == "queue_full"
    assert (await client.get("/healthz")).status == 200
    async with client.ws_connect("/api/v1/ws") as ws:  # sockets are not held to the budget
        assert (await ws.receive_str()) == "hello"
    assert shed == [("api", "queue_full")] and len(entered) == 2

    held.set()
    for task in holding:
        assert (await task).status == 200
    assert (await client.get("/api/v1/slow")).status == 200  # capacity back


async def _entered(entered: list[str], n: int) -> bool:
    return len(entered) == n


async def test_without_admission_control_nothing_is_shed(aiohttp_client: Any) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application(middlewares=[admission_middleware(admission=None, on_shed=print)])
    app.router.add_get("/api/v1/x", ok)
    client = await aiohttp_client(app)
    assert (await client.get("/api/v1/x")).status == 200
