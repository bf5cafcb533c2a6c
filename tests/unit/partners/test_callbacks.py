"""The simulator's callback sender: ordered, signed, token-bearing, retried with backoff."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from propdev.partners import CallbackSender
from propdev.partners.signing import verify
from propdev.pki import client_context

SECRET = "callback-secret"


class FakeNode:
    """Our node's two endpoints, answering with the statuses queued in ``answers``."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.received: list[tuple[str, list[dict[str, Any]], str | None]] = []
        self.tokens = 0

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert form["grant_type"] == "client_credentials" and form["client_id"] == "simulator"
        self.tokens += 1
        return web.json_response({"access_token": f"tok-{self.tokens}", "expires_in": 300})

    async def events(self, request: web.Request) -> web.Response:
        body = await request.read()
        problem = verify(SECRET, request.headers, body)
        self.received.append((request.headers["webhook-id"], json.loads(body)["events"], problem))
        assert request.headers["Authorization"] == f"Bearer tok-{self.tokens}"
        status = self.answers.pop(0) if self.answers else 202
        return web.json_response({}, status=status)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeNode, str]]:
    node = FakeNode([])
    app = web.Application()
    app.router.add_post("/oauth/token", node.token)
    app.router.add_post("/partner/v1/events", node.events)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield node, str(server.make_url("")).rstrip("/")
    await server.close()


def sender(url: str, settings: Any, **kwargs: Any) -> CallbackSender:
    return CallbackSender(
        partner_id="simulator",
        callback_url=url,
        ssl_context=client_context(settings.pki_dir),
        secret=SECRET,
        base_delay=0.001,
        max_delay=0.01,
        **kwargs,
    )


async def test_events_arrive_in_order_signed_and_a_failed_delivery_is_retried_as_is(
    fake: tuple[FakeNode, str], settings: Any
) -> None:
    node, url = fake
    node.answers = [503, 500]
    callbacks = sender(url, settings)
    try:
        for n in range(3):
            await callbacks.send({"event_id": f"e{n}", "type": "device_online"})
        await asyncio.wait_for(callbacks.drain(), timeout=30)
    finally:
        await callbacks.close()
    ids = [message_id for message_id, _, _ in node.received]
    events = [[e["event_id"] for e in batch] for _, batch, _ in node.received]
    assert all(problem is None for _, _, problem in node.received)
    assert events == [["e0", "e1", "e2"]] * 3  # one batch, in order, tried three times
    assert len(set(ids)) == 1  # the retries carried the first delivery's id
    assert callbacks.delivered == 3 and callbacks.dropped == 0


async def test_a_401_renews_the_token_and_a_400_is_not_retried(
    fake: tuple[FakeNode, str], settings: Any
) -> None:
    node, url = fake
    node.answers = [401, 202, 400]
    callbacks = sender(url, settings)
    try:
        await callbacks.send({"event_id": "e0"})
        await asyncio.wait_for(callbacks.drain(), timeout=30)
        await callbacks.send({"event_id": "e1"})
        await asyncio.wait_for(callbacks.drain(), timeout=30)
    finally:
        await callbacks.close()
    assert node.tokens == 2
    assert [batch[0]["event_id"] for _, batch, _ in node.received] == ["e0", "e0", "e1"]
    assert (callbacks.delivered, callbacks.dropped) == (1, 1)


async def test_a_node_that_never_answers_well_costs_a_bounded_number_of_attempts(
    fake: tuple[FakeNode, str], settings: Any
) -> None:
    node, url = fake
    node.answers = [503] * 10
    callbacks = sender(url, settings, max_attempts=3)
    try:
        await callbacks.send({"event_id": "e0"})
        await asyncio.wait_for(callbacks.drain(), timeout=30)
    finally:
        await callbacks.close()
    assert len(node.received) == 3 and callbacks.dropped == 1


def test_backoff_grows_exponentially_up_to_its_cap_with_jitter(settings: Any) -> None:
    callbacks = sender("https://127.0.0.1:1", settings, jitter=lambda: 1.0)
    assert [callbacks.backoff(n) for n in (1, 2, 3, 10)] == [0.001, 0.002, 0.004, 0.01]
    low = sender("https://127.0.0.1:1", settings, jitter=lambda: 0.0)
    assert low.backoff(1) == 0.0005
