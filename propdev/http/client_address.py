"""The client's address: the TCP peer, or what trusted proxies say about the client.

Behind a load balancer every request comes from the balancer's address. Only when the peer
is in ``PROPDEV_TRUSTED_PROXIES`` are its forwarding headers believed:

- ``Forwarded`` (RFC 7239): the ``for=`` of each element, every header line in order;
- otherwise ``X-Forwarded-For``: comma-separated addresses, every header line in order.

The list is walked from the right (the hop nearest to us) to the left, skipping trusted
proxies; the first address that is not one of them is the client. A value that is not an
address (``unknown``, an obfuscated ``_name``, garbage) ends the walk: the client is then the
last trusted hop passed, the one that could not say who its client was. Ports are dropped
(``[2001:db8::1]:443``, ``192.0.2.7:5000``), IPv4-mapped IPv6 addresses count as IPv4. When a
trusted peer sends both headers and they name different clients, neither is believed (one of
them came from the client, passed through): the peer is the client.

``client_address_middleware`` runs first of all middlewares and hands the rest of the chain a
request whose ``request.remote`` is that address (``Request.clone(remote=...)``), so the rate
limits, the sign-in throttle, partner allowlists, ``/metrics``' allowlist and the logs all see
one and the same client. The connection cap (``propdev.http.connections``) counts
connections before any HTTP is read: there the TCP peer is the only address there is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

VIA: web.RequestKey[str] = web.RequestKey("via")
"""The trusted proxy a request came through, when its client is another address."""
MAX_HOPS = 32  # hops looked at, from the right; a longer chain ends in the last one read


def parse_address(value: str) -> Address | None:
    """An address from a header value: bare, ``[v6]``, ``[v6]:port``, ``v4:port``, quoted."""
    value = value.strip().strip('"').strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        value = value[1:end]
    elif value.count(":") == 1:  # v4:port (a v6 address has two colons or more)
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def _split_quoted(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside quoted strings (RFC 7230 ``quoted-string``)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def forwarded_for(headers: Iterable[str]) -> list[str]:
    """The ``for=`` values of ``Forwarded`` header lines, in order (an element without one
    gives ``""``, which is not an address)."""
    out = []
    for line in headers:
        for element in _split_quoted(line, ","):
            if not element.strip():
                continue
            found = ""
            for pair in _split_quoted(element, ";"):
                name, sep, value = pair.partition("=")
                if sep and name.strip().lower() == "for":
                    found = value.strip()
            out.append(found)
    return out


def x_forwarded_for(headers: Iterable[str]) -> list[str]:
    """The addresses of ``X-Forwarded-For`` header lines, in order."""
    return [item.strip() for line in headers for item in line.split(",") if item.strip()]


def _walk(peer: Address, chain: Sequence[str], trusted: Sequence[Network]) -> Address:
    """The client named by ``chain`` as received from the trusted ``peer``."""
    client = peer
    for value in reversed(chain[-MAX_HOPS:]):
        hop = parse_address(value)
        if hop is None:
            return client  # the last trusted hop could not name its client
        client = hop
        if not _in(hop, trusted):
            return hop
    return client


def _in(address: Address, networks: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def resolve_client(
    peer: str | None,
    *,
    forwarded: Sequence[str] = (),
    x_forwarded_for_lines: Sequence[str] = (),
    trusted: Sequence[Network] = (),
) -> str | None:
    """The client's address of a request from ``peer`` carrying the given header lines."""
    address = parse_address(peer) if peer else None
    if address is None:
        return peer
    if not _in(address, trusted):
        return str(address)
    by_forwarded = _walk(address, forwarded_for(forwarded), trusted) if forwarded else None
    by_xff = (
        _walk(address, x_forwarded_for(x_forwarded_for_lines), trusted)
        if x_forwarded_for_lines
        else None
    )
    if by_forwarded is not None and by_xff is not None and by_forwarded != by_xff:
        return str(address)  # the two disagree: one of them is the client's own
    for client in (by_forwarded, by_xff):
        if client is not None:
            return str(client)
    return str(address)


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def address_in(remote: str | None, allowed: Sequence[Network]) -> bool:
    """True when ``remote`` (a client address) is inside one of ``allowed``."""
    address = parse_address(remote) if remote else None
    return address is not None and _in(address, allowed)


def client_address_middleware(*, trusted: Sequence[Network]) -> Middleware:
    """The outermost middleware: ``request.remote`` becomes the client's address for all
    that follows (unchanged when the peer is not a trusted proxy)."""

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote
        if not trusted:
            return await handler(request)
        headers = request.headers
        client = resolve_client(
            peer,
            forwarded=headers.getall("Forwarded", ()),
            x_forwarded_for_lines=headers.getall("X-Forwarded-For", ()),
            trusted=trusted,
        )
        if client == peer or client is None or peer is None:
            return await handler(request)
        forwarded = request.clone(remote=client)
        forwarded[VIA] = peer
        return await handler(forwarded)

    return impl
