"""Who may call the gRPC service: the same four proofs as ``/partner/v1`` (``check_partner``).

The listener requires a client certificate from the project CA at the handshake. Per call:
the certificate is not on the CRL (gRPC's TLS stack does not read our CRL, so we check the
serial), the ``authorization`` metadata holds a valid access token bound to that certificate,
then ``check_partner`` (role, registered partner, certificate subject, allowlist).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from propdev.http.errors import ForbiddenError, UnauthorizedError
from propdev.http.partner_auth import PartnerCaller, check_partner
from propdev.http.principal import Principal
from propdev.pki.crl import current_revoked
from propdev.security import InvalidTokenError, TokenVerifier, check_certificate_binding
from propdev.storage import Database, StoreUnavailableError

PARTNER = "partner"
"""A method for partners only (their certificate and bound token), about their own devices:
no staff scope applies (staff have no gRPC API)."""
METHOD_CALLERS: dict[str, str] = {
    "StreamEvents": PARTNER,
    "Commands": PARTNER,
}
"""Who may call each method of ``PartnerGateway``; a method not listed is refused (and
``tests/unit/http/test_scope_coverage`` fails for it)."""


class CallRefusedError(Exception):
    """Raised when a call is not authenticated or not allowed; ``code`` is its gRPC status."""

    def __init__(self, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PartnerAuthenticator:
    db: Database
    verifier: TokenVerifier
    pki_dir: Path

    async def authenticate(
        self, context: grpc.aio.ServicerContext[object, object]
    ) -> PartnerCaller:
        cert = peer_certificate(context)
        if cert is None:
            raise CallRefusedError(
                grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required"
            )
        if x509.load_der_x509_certificate(cert).serial_number in current_revoked(self.pki_dir):
            raise CallRefusedError(grpc.StatusCode.UNAUTHENTICATED, "the certificate is revoked")
        token = bearer(context)
        if token is None:
            raise CallRefusedError(
                grpc.StatusCode.UNAUTHENTICATED, "authorization: Bearer required"
            )
        try:
            claims = self.verifier.verify(token)
            check_certificate_binding(claims, cert)
        except InvalidTokenError as exc:
            raise CallRefusedError(
                grpc.StatusCode.UNAUTHENTICATED, f"invalid token: {exc}"
            ) from exc
        try:
            return await check_partner(
                self.db,
                cert=cert,
                caller=Principal.from_claims(claims.raw),
                remote=peer_address(context.peer()),
            )
        except UnauthorizedError as exc:
            raise CallRefusedError(grpc.StatusCode.UNAUTHENTICATED, exc.detail) from exc
        except ForbiddenError as exc:
            raise CallRefusedError(grpc.StatusCode.PERMISSION_DENIED, exc.detail) from exc
        except StoreUnavailableError as exc:  # the registry unreadable: retryable, as HTTP's 503
            raise CallRefusedError(
                grpc.StatusCode.UNAVAILABLE, "the store is unavailable; retry"
            ) from exc


def peer_certificate(context: grpc.aio.ServicerContext[object, object]) -> bytes | None:
    """The DER of the client certificate of the call's connection."""
    pems = list(context.auth_context().get("x509_pem_cert") or [])
    if not pems:
        return None
    return x509.load_pem_x509_certificate(pems[0]).public_bytes(Encoding.DER)


def bearer(context: grpc.aio.ServicerContext[object, object]) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def peer_address(peer: str) -> str | None:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` → the address, or None."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        host = rest.rsplit(":", 1)[0]
    elif kind == "ipv6":
        host = rest.rsplit(":", 1)[0].strip("[]")
    else:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None
