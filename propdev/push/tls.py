"""Outbound TLS for push providers: the system trust store plus ``PROPDEV_EXTRA_CA_FILE``."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(extra_ca_file: Path | None = None, *, http2: bool = False) -> ssl.SSLContext:
    """A verifying client context; ``http2`` offers ALPN ``h2`` (APNs speaks nothing else)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if extra_ca_file is not None:
        context.load_verify_locations(cafile=str(extra_ca_file))
    if http2:
        context.set_alpn_protocols(["h2"])
    return context


__all__ = ("client_context",)
