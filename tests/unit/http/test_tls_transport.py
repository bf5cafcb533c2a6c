"""The API listener's TLS: one read buffer per listener, not 256 KiB per connection, and
everything the stdlib's TLS gave still there (large messages, client certificates)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from asyncio import sslproto
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from propdev.http.connections import CappedTCPSite, ConnectionCap
from propdev.http.tls import client_certificate_der
from propdev.http.tls_transport import RECORD, SHARED_READ, LeanTLSProtocol
from propdev.pki import (
    client_context,
    ensure_ca,
    ensure_server_cert,
    issue_partner_cert,
    server_context,
)

seen: web.AppKey[list[tuple[sslproto.SSLProtocol, bytes | None]]] = web.AppKey("seen")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    ensure_ca(tmp_path)
    ensure_server_cert(tmp_path, ("127.0.0.1",))
    return tmp_path


@contextlib.asynccontextmanager
async def tls_listener(pki: Path) -> AsyncIterator[tuple[str, web.Application]]:
    """An echo app (WebSocket and HTTP) behind ``CappedTCPSite`` with the node's TLS context;
    each request records the TLS protocol under it and the client certificate it saw."""

    def note(request: web.Request) -> None:
        transport = request.transport
        assert transport is not None
        request.app[seen].append((transport._ssl_protocol, client_certificate_der(request)))  # type: ignore[attr-defined]

    async def echo_ws(request: web.Request) -> web.WebSocketResponse:
        note(request)
        ws = web.WebSocketResponse(max_msg_size=2 * 1024 * 1024, compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def echo_http(request: web.Request) -> web.Response:
        note(request)
        return web.Response(body=await request.read())

    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[seen] = []
    app.router.add_get("/ws", echo_ws)
    app.router.add_post("/echo", echo_http)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    cert = ensure_server_cert(pki, ("127.0.0.1",))
    site = CappedTCPSite(
        runner, "127.0.0.1", 0, ssl_context=server_context(pki, cert), cap=ConnectionCap(0)
    )
    await site.start()
    try:
        yield f"https://127.0.0.1:{site.port}", app
    finally:
        await runner.cleanup()


async def test_tls_connections_share_the_listeners_read_buffer_and_pin_none_of_their_own(
    pki: Path,
) -> None:
    async with tls_listener(pki) as (url, app):
        # Two sessions: two TLS connections, held open together.
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(pki))) as a,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(pki))) as b,
        ):
            for session in (a, b):
                async with session.post(f"{url}/echo", data=b"hello") as response:
                    assert await response.read() == b"hello"
            (first, _), (second, _) = app[seen]
    assert first is not second
    for protocol in (first, second):
        assert type(protocol) is LeanTLSProtocol
        assert protocol.max_size == RECORD
        assert len(protocol._ssl_buffer) == 0  # the stdlib's own 256 KiB bytearray is gone
        assert len(protocol.get_buffer(-1)) == SHARED_READ
    assert first.get_buffer(-1) is second.get_buffer(-1)
    # The stdlib protocol it stands in for would have pinned 256 KiB per connection.
    assert sslproto.SSLProtocol.max_size == 256 * 1024


async def test_one_mebibyte_messages_cross_several_tls_websockets_at_once_intact(
    pki: Path,
) -> None:
    payloads = [os.urandom(1024 * 1024) for _ in range(4)]
    connector = aiohttp.TCPConnector(ssl=client_context(pki), limit=0)
    async with tls_listener(pki) as (url, _), aiohttp.ClientSession(connector=connector) as http:

        async def round_trip(payload: bytes) -> bytes:
            async with http.ws_connect(f"{url}/ws", max_msg_size=2 * 1024 * 1024) as ws:
                await ws.send_bytes(payload)
                msg = await ws.receive(timeout=30)
                assert msg.type == aiohttp.WSMsgType.BINARY
                return bytes(msg.data)

        # Concurrent: the reads of all four sockets go through the one shared buffer.
        echoed = await asyncio.gather(*(round_trip(p) for p in payloads))
        assert echoed == payloads

        async with http.post(f"{url}/echo", data=payloads[0]) as response:
            assert await response.read() == payloads[0]


async def test_the_client_certificate_is_still_seen_through_the_lean_transport(
    pki: Path,
) -> None:
    partner = issue_partner_cert(pki, "acme")
    with_cert = client_context(pki, partner)
    async with (
        tls_listener(pki) as (url, app),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=with_cert)) as http,
        http.post(f"{url}/echo", data=b"x") as response,
    ):
        assert response.status == 200
    ((_, der),) = app[seen]
    expected = ssl.PEM_cert_to_DER_cert(partner.cert.read_text())
    assert der == expected
