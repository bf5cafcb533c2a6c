"""A flood of connections from one address: the node's API listener caps them per address."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.security.conftest import tls_client
from tests.security.helpers import raw_tls, read_all
from tests.unit.http.test_connections import Stream, close_all


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[RunningNode]:
    settings = node_settings(tmp_path, PROPDEV_CONNECTIONS_PER_IP="3", PROPDEV_HEADER_TIMEOUT="30")
    async with running_node(settings) as running:
        yield running


async def _healthz(stream: Stream) -> bytes:
    reader, writer = stream
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def test_a_fourth_tls_connection_from_one_address_is_closed_without_an_answer(
    capped: RunningNode,
) -> None:
    ctx = tls_client(capped)
    held = [await raw_tls(capped, ctx) for _ in range(3)]
    try:
        for stream in held:
            assert await _healthz(stream) == b"HTTP/1.1 200 OK"  # kept alive: still counted
        try:
            extra = await raw_tls(capped, ctx)
        except (ConnectionError, ssl.SSLError):
            pass  # closed before our side of the handshake finished
        else:
            extra[1].write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert await read_all(extra[0], limit=10) == b""
            await close_all([extra])
        assert await _healthz(held[0]) == b"HTTP/1.1 200 OK"

        await close_all(held[1:])
        held = held[:1]
        deadline = asyncio.get_running_loop().time() + 10
        while True:  # once the node has seen the closes, new connections are served again
            stream = await raw_tls(capped, ctx)
            if await get_or_empty(stream) == b"HTTP/1.1 200 OK":
                held.append(stream)
                break
            await close_all([stream])
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    finally:
        await close_all(held)


async def get_or_empty(stream: Stream) -> bytes:
    try:
        return await _healthz(stream)
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        return b""
