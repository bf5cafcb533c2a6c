"""TLS contexts: TLS 1.2 and 1.3 only, modern AEAD ciphers, certificates from the project CA."""

from __future__ import annotations

import ssl
from pathlib import Path

from propdev.pki.ca import CertPaths, ca_paths

# Mozilla "intermediate": ECDHE with AES-GCM or ChaCha20 for TLS 1.2; TLS 1.3 suites are fixed.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def server_context(pki_dir: Path, server: CertPaths) -> ssl.SSLContext:
    """A server context that asks for (but does not require) a client certificate.

    Residents connect without one; partner routes check that one was presented and chains
    to the project CA.
    """
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    ctx.load_cert_chain(server.cert, server.key)
    ctx.load_verify_locations(cafile=str(ca_paths(pki_dir).cert))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    # Mozilla "intermediate" rejects X448 and P-521; Python's ssl can name one group only.
    ctx.set_ecdh_curve("prime256v1")
    return ctx


def client_context(pki_dir: Path, client: CertPaths | None = None) -> ssl.SSLContext:
    """A client context that trusts the project CA (and only it), with an optional client cert."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    ctx.load_verify_locations(cafile=str(ca_paths(pki_dir).cert))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    return ctx


def outbound_context(ca_pem: str | None) -> ssl.SSLContext:
    """A client context for a partner's API: its server certificate checked against
    ``ca_pem`` (the vendor's CA, PEM), or against the system's trust store when None."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    if ca_pem:
        ctx.load_verify_locations(cadata=ca_pem)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
