"""The TLS connection under a request: the client certificate it presented."""

from __future__ import annotations

from aiohttp import web


def client_certificate_der(request: web.Request) -> bytes | None:
    """The DER of the client certificate of this TLS connection, if one was presented.

    The listener's TLS context verified it against the project CA (``CERT_OPTIONAL``).
    """
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der
