"""A cap on the open connections of each client address on the API listener (flood protection).

``ConnectionCap`` counts the connections open per source address; ``CappedTCPSite`` is an
aiohttp ``TCPSite`` whose protocol factory goes through it (and, for TLS, through
``propdev.http.tls_transport``, which keeps no read buffer per connection). A connection is
counted from the moment it is established (after the TLS handshake: asyncio hands it to the
protocol then) until it closes, whether it is busy or idle in keep-alive. One past ``per_ip``
is closed at once, before a byte of HTTP is read or written: no handler, no middleware, no log
line per connection (``connection_refused`` is logged once each time an address reaches its cap).

Addresses in ``exempt`` (networks, e.g. a load balancer in front) are not capped; loopback is
capped like any other address unless listed. IPv4-mapped IPv6 addresses count as their IPv4.

Only the TCP peer applies here, never the client a trusted proxy names
(``propdev.http.client_address``): the cap acts before a byte of HTTP is read, so there are no
headers yet. Behind a load balancer, list it in ``PROPDEV_CONNECTIONS_EXEMPT``.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from aiohttp import web

from propdev.http.tls_transport import lean_tls_factory

log = structlog.get_logger()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def peer_ip(peername: Any) -> str | None:
    """The normalized address of a transport's ``peername`` (None for non-IP sockets)."""
    if not isinstance(peername, tuple) or not peername:
        return None
    try:
        address = ipaddress.ip_address(peername[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


class ConnectionCap:
    """At most ``per_ip`` open connections per client address (0: no cap)."""

    def __init__(self, per_ip: int, *, exempt: Iterable[Network] = ()) -> None:
        self.per_ip = per_ip
        self.exempt = tuple(exempt)
        self._open: collections.Counter[str] = collections.Counter()
        self._at_cap: set[str] = set()  # addresses refused since they last went below the cap
        self.closed = False

    def _is_exempt(self, ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return any(address in network for network in self.exempt)

    def close(self) -> None:
        """Refuse every connection from now on (the listener stops): one that completes its
        TLS handshake after the listening socket was closed gets no HTTP answer, and its
        client tries another node."""
        self.closed = True

    def acquire(self, ip: str | None) -> bool:
        """Count one more connection from ``ip``; False (and nothing counted) at the cap, or
        once closed."""
        if self.closed:
            return False
        if ip is None or self.per_ip <= 0 or self._is_exempt(ip):
            return True
        if self._open[ip] >= self.per_ip:
            if ip not in self._at_cap:
                self._at_cap.add(ip)
                log.warning("connection_refused", reason="per_ip_cap", ip=ip, cap=self.per_ip)
            return False
        self._open[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self._open[ip] -= 1
        if self._open[ip] <= 0:
            del self._open[ip]
        self._at_cap.discard(ip)

    def open_count(self, ip: str) -> int:
        """The connections from ``ip`` open now (the counted ones)."""
        return self._open[ip]

    def protocol_factory(
        self, factory: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """``factory`` (aiohttp's ``Server``) with each connection counted, or closed at the cap."""
        return lambda: _Counted(self, factory())


class _Counted(asyncio.Protocol):
    """Passes everything to the real protocol; counts the connection while it is open."""

    __slots__ = ("_cap", "_counted", "_inner", "_ip")

    def __init__(self, cap: ConnectionCap, inner: asyncio.Protocol) -> None:
        self._cap = cap
        self._inner = inner
        self._ip: str | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ip = peer_ip(transport.get_extra_info("peername"))
        if not self._cap.acquire(ip):
            # No HTTP answer: the inner protocol never sees this connection.
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            else:
                transport.close()
            return
        self._ip, self._counted = ip, True
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._counted:
            return
        self._counted = False
        if self._ip is not None:
            self._cap.release(self._ip)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._counted:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._counted else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class CappedTCPSite(web.TCPSite):
    """``web.TCPSite`` whose connections go through ``cap``."""

    __slots__ = ("_cap",)

    def __init__(self, runner: web.BaseRunner, *args: Any, cap: ConnectionCap, **kw: Any) -> None:
        super().__init__(runner, *args, **kw)
        self._cap = cap

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        server = self._runner.server
        assert server is not None
        factory: Callable[[], asyncio.BaseProtocol] = self._cap.protocol_factory(server)
        if self._ssl_context is not None:
            # TLS terminated as ssl= would, without a 256 KiB read buffer per connection.
            factory = lean_tls_factory(factory, self._ssl_context)
        self._server = await asyncio.get_running_loop().create_server(
            factory,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
