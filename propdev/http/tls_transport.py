"""TLS for the API listener without a 256 KiB read buffer pinned by every connection.

CPython 3.11's asyncio TLS (``asyncio.sslproto.SSLProtocol``) allocates ``bytearray(256 KiB)``
per connection, zero-filled and so resident, as the buffer the socket is read into; 10,000 idle
WebSockets held ~3 GB in it alone. The buffer only carries ciphertext from ``recv_into`` to the
protocol's incoming ``ssl.MemoryBIO``: the selector transport calls ``get_buffer``,
``recv_into`` and ``buffer_updated`` one after the other without yielding, and
``buffer_updated`` copies the bytes into the BIO at once. So one buffer per listener (its loop,
its thread) serves every connection: ``LeanTLSProtocol`` hands out that shared buffer.

``max_size``, the stdlib's per-read size, becomes one TLS record's plaintext (16 KiB): it is
also the chunk ``SSLObject.read`` is asked for, and OpenSSL returns at most one record per
read, so large messages cost no more reads than before (the selector reads at most
``SHARED_READ`` bytes per wake-up; the BIO reassembles records split across reads).

Everything else is the stdlib's protocol, used as ``loop.create_server(..., ssl=ctx)`` uses it:
the same handshake and shutdown timeouts, flow control and extra info (``peername``,
``ssl_object``, ``peercert``). It leans on private names of ``asyncio.sslproto`` (``get_buffer``
returning ``_ssl_buffer_view``); ``tests/unit/http/test_tls.py`` checks them on the running
Python, so an upgrade that changes them fails a test, not production.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from collections.abc import Callable

RECORD = 16 * 1024
"""A TLS record's largest plaintext (RFC 8446 §5.1): the size asked of each ``SSLObject.read``."""

SHARED_READ = 64 * 1024
"""The listener's one read buffer: the most ciphertext taken from a socket per wake-up."""


class LeanTLSProtocol(sslproto.SSLProtocol):
    """Server-side stdlib TLS whose socket reads go through a buffer shared by the listener."""

    max_size = RECORD  # what the base class allocates (then dropped) and reads per record

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app_protocol: asyncio.BaseProtocol,
        sslcontext: ssl.SSLContext,
        shared: memoryview,
    ) -> None:
        # No waiter (typeshed wants a Future): nobody awaits the handshake, and a failed one
        # would leave a Future's exception unretrieved; the transport closes itself on failure.
        super().__init__(loop, app_protocol, sslcontext, None, server_side=True)  # type: ignore[arg-type]
        self._ssl_buffer_view = shared
        self._ssl_buffer = bytearray()  # the base class's own, released

    def get_buffer(self, n: int) -> memoryview:
        return self._ssl_buffer_view


def lean_tls_factory(
    factory: Callable[[], asyncio.BaseProtocol], sslcontext: ssl.SSLContext
) -> Callable[[], asyncio.BaseProtocol]:
    """A protocol factory for a plain ``create_server`` that terminates TLS with ``sslcontext``
    and hands the decrypted connection to ``factory()``'s protocol, as ``ssl=sslcontext`` would.
    Call it inside the loop that will serve the connections (the buffer is that loop's)."""
    loop = asyncio.get_running_loop()
    shared = memoryview(bytearray(SHARED_READ))

    def make() -> asyncio.BaseProtocol:
        return LeanTLSProtocol(loop, factory(), sslcontext, shared)

    return make
