"""Who may call ``/partner/v1``: a partner, proven four ways at once.

1. a client certificate from the project CA on this TLS connection (the listener verifies the
   chain with ``CERT_OPTIONAL``; here we insist one was presented) whose subject is the one
   registered for the partner;
2. a ``client_credentials`` access token with the role ``partner``, bound to that very
   certificate (``cnf.x5t#S256``; the auth middleware checks the binding, we insist on it);
3. the token's client id names a registered partner (``partners`` row, not deleted): the
   partner's devices are the only ones it may report;
4. the client's address inside the partner's allowlist (``partners.allowed_cidrs`` and the
   OAuth client's ``allowed_cidrs``), checked on every call, not only when the token was
   issued: ``request.remote``, which ``propdev.http.client_address`` set (the TCP peer, or the
   client a trusted proxy names; a header from anyone else is ignored).

Missing or mismatched proof of identity is 401; a known partner out of bounds is 403.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509

from propdev.http.errors import ForbiddenError, UnauthorizedError
from propdev.http.middlewares import principal
from propdev.http.principal import Principal
from propdev.http.tls import client_certificate_der
from propdev.pki.crl import current_revoked
from propdev.security import address_in, certificate_thumbprint
from propdev.storage import Database

CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


@dataclass(frozen=True, slots=True)
class PartnerCaller:
    """An authenticated partner: its id (= OAuth client id) and the address it called from."""

    partner_id: str
    remote: str


async def authenticate_partner(
    request: web.Request, db: Database, *, pki_dir: Path | None = None
) -> PartnerCaller:
    """The partner calling ``request``; raises 401/403 problems otherwise. With ``pki_dir``,
    a certificate the CRL revokes is refused on every request, also on a connection opened
    before the revocation."""
    cert = client_certificate_der(request)
    if cert is not None and pki_dir is not None:
        try:
            serial = x509.load_der_x509_certificate(cert).serial_number
        except ValueError:
            serial = None
        if serial is not None and serial in current_revoked(pki_dir):
            raise UnauthorizedError("The client certificate is revoked.", headers=CHALLENGE)
    return await check_partner(db, cert=cert, caller=principal(request), remote=request.remote)


async def check_partner(
    db: Database, *, cert: bytes | None, caller: Principal, remote: str | None
) -> PartnerCaller:
    """The four proofs for a caller over any transport (HTTP here, gRPC in ``propdev.grpc``):
    ``cert`` the DER of the connection's client certificate, ``caller`` the verified token's
    principal, ``remote`` the source address. Raises ``UnauthorizedError``/``ForbiddenError``."""
    if cert is None:
        raise UnauthorizedError(
            "A client certificate from the project CA is required.", headers=CHALLENGE
        )
    if "partner" not in caller.roles:
        raise ForbiddenError("Only partners may call the partner API.")
    cnf = caller.claims.get("cnf")
    bound = cnf.get("x5t#S256") if isinstance(cnf, Mapping) else None
    if not isinstance(bound, str):
        raise UnauthorizedError(
            "The token must be bound to a client certificate.", headers=CHALLENGE
        )
    if bound != certificate_thumbprint(cert):
        raise UnauthorizedError("The token is bound to another certificate.", headers=CHALLENGE)
    row = await db.fetch_one(
        "SELECT p.allowed_cidrs AS partner_cidrs, c.allowed_cidrs AS client_cidrs, "
        "c.tls_client_auth_subject_dn AS dn FROM partners p "
        "JOIN oauth_clients c ON c.client_id = p.id WHERE p.id = :id AND p.removed_at IS NULL",
        id=caller.client_id,
    )
    if row is None:
        raise ForbiddenError("This client is not a registered partner.")
    try:
        registered = x509.Name.from_rfc4514_string(str(row["dn"] or ""))
        subject = x509.load_der_x509_certificate(cert).subject
    except ValueError:
        raise ForbiddenError("The certificate does not name this partner.") from None
    if subject != registered:
        raise ForbiddenError("The certificate does not name this partner.")
    lists = [json.loads(row["partner_cidrs"] or "[]"), json.loads(row["client_cidrs"] or "[]")]
    lists = [cidrs for cidrs in lists if cidrs]
    if not lists or not all(address_in(remote, cidrs) for cidrs in lists):
        raise ForbiddenError(f"Calls from {remote} are not allowed for this partner.")
    return PartnerCaller(caller.client_id, remote or "")
