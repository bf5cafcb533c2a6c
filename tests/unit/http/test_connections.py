"""The per-address connection cap: counting, exemptions, and a real listener with real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Iterable

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from propdev.config import Settings
from propdev.config.settings import SettingsError
from propdev.http.connections import CappedTCPSite, ConnectionCap, peer_ip

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def test_the_cap_counts_open_connections_per_address_and_logs_once_at_the_cap() -> None:
    cap = ConnectionCap(2)
    with capture_logs() as logs:
        assert cap.acquire("10.0.0.1") and cap.acquire("10.0.0.1")
        assert not cap.acquire("10.0.0.1") and not cap.acquire("10.0.0.1")
        assert cap.acquire("10.0.0.2")  # another address has its own count
    assert cap.open_count("10.0.0.1") == 2
    refused = [r for r in logs if r["event"] == "connection_refused"]
    assert len(refused) == 1 and refused[0]["ip"] == "10.0.0.1" and refused[0]["cap"] == 2
    cap.release("10.0.0.1")
    assert cap.open_count("10.0.0.1") == 1
    assert cap.acquire("10.0.0.1")


def test_a_closed_cap_refuses_every_connection_exempt_or_not() -> None:
    cap = ConnectionCap(2, exempt=[ipaddress.ip_network("10.0.0.0/8")])
    assert cap.acquire("192.0.2.1") and cap.acquire("10.1.2.3")

    cap.close()  # the listener stops: a handshake that completes now gets no answer

    assert not cap.acquire("192.0.2.2")
    assert not cap.acquire("10.1.2.4")
    assert not cap.acquire(None)
    assert cap.open_count("192.0.2.2") == 0


def test_loopback_is_capped_unless_exempt_and_zero_means_no_cap() -> None:
    capped = ConnectionCap(1)
    assert capped.acquire("127.0.0.1") and not capped.acquire("127.0.0.1")
    exempt = ConnectionCap(1, exempt=[ipaddress.ip_network("127.0.0.0/8")])
    assert all(exempt.acquire("127.0.0.1") for _ in range(5))
    assert exempt.acquire("10.0.0.1") and not exempt.acquire("10.0.0.1")
    off = ConnectionCap(0)
    assert all(off.acquire("10.0.0.1") for _ in range(1000))


def test_peer_addresses_are_normalized() -> None:
    assert peer_ip(("::ffff:10.1.2.3", 5000, 0, 0)) == "10.1.2.3"
    assert peer_ip(("2001:db8::1", 5000, 0, 0)) == "2001:db8::1"
    assert peer_ip(("10.1.2.3", 5000)) == "10.1.2.3"
    assert peer_ip("/tmp/socket") is None and peer_ip(None) is None


def test_the_settings_read_the_cap_and_the_exempt_networks() -> None:
    assert Settings.from_env({}).connections_per_ip == 256
    settings = Settings.from_env(
        {
            "PROPDEV_CONNECTIONS_PER_IP": "10",
            "PROPDEV_CONNECTIONS_EXEMPT": "10.0.0.5, 192.168.0.0/16 ::1",
        }
    )
    assert settings.connections_per_ip == 10
    assert settings.connections_exempt == ("10.0.0.5/32", "192.168.0.0/16", "::1/128")
    with pytest.raises(SettingsError, match="PROPDEV_CONNECTIONS_EXEMPT"):
        Settings.from_env({"PROPDEV_CONNECTIONS_EXEMPT": "10.0.0.0/33"})
    with pytest.raises(SettingsError, match="PROPDEV_CONNECTIONS_PER_IP"):
        Settings.from_env({"PROPDEV_CONNECTIONS_PER_IP": "-1"})


@contextlib.asynccontextmanager
async def listener(cap: ConnectionCap) -> AsyncIterator[int]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=60)
    await runner.setup()
    site = CappedTCPSite(runner, "127.0.0.1", 0, cap=cap)
    await site.start()
    try:
        yield site.port
    finally:
        await runner.cleanup()


async def get(stream: Stream) -> bytes:
    """One keep-alive request on an open connection: the status line, or b"" if closed."""
    reader, writer = stream
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
    except (ConnectionError, asyncio.IncompleteReadError):
        return b""
    return head.split(b"\r\n", 1)[0]


async def close_all(streams: Iterable[Stream]) -> None:
    for _, writer in streams:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_one_connection_past_the_cap_is_closed_and_a_closed_one_frees_its_slot() -> None:
    cap = ConnectionCap(3)
    async with listener(cap) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        try:
            for stream in held:
                assert await get(stream) == b"HTTP/1.1 200 OK"  # and kept alive
            assert cap.open_count("127.0.0.1") == 3
            extra = await asyncio.open_connection("127.0.0.1", port)
            assert await get(extra) == b""  # closed at accept, no HTTP answer
            await close_all([extra])
            assert await get(held[0]) == b"HTTP/1.1 200 OK"  # the open ones still work
            assert cap.open_count("127.0.0.1") == 3

            await close_all(held[2:])
            held = held[:2]
            deadline = asyncio.get_running_loop().time() + 10
            while cap.open_count("127.0.0.1") > 2:  # the server sees the close
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            held.append(await asyncio.open_connection("127.0.0.1", port))
            assert await get(held[-1]) == b"HTTP/1.1 200 OK"
        finally:
            await close_all(held)
        deadline = asyncio.get_running_loop().time() + 10
        while cap.open_count("127.0.0.1"):  # every close is released
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)


async def test_an_exempt_network_is_not_capped() -> None:
    cap = ConnectionCap(1, exempt=[ipaddress.ip_network("127.0.0.0/8")])
    async with listener(cap) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        try:
            for stream in held:
                assert await get(stream) == b"HTTP/1.1 200 OK"
        finally:
            await close_all(held)
