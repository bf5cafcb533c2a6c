"""Partners' client certificates from their own CSRs: the partner keeps its key.

``sign_partner_csr(pki_dir, name, csr_pem, days=...)`` checks the request and signs a client
certificate from the project CA whose subject is partner ``name``'s (``partner_subject_dn``),
whatever else the request asked for. Refused (``CsrRejectedError``): a request that is not one
PEM CSR, whose self-signature does not verify, whose key is weak (RSA under 2048 bits, an EC
key not on P-256 or P-384, any other kind), or whose subject CN or DNS names name anyone but
``name``. A new request while a certificate is valid is a renewal: both stay valid until the
old one expires or is revoked (``revoke_serials``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from propdev.pki.ca import _load_key, ensure_ca, load_cert, partner_subject_dn
from propdev.pki.errors import CsrRejectedError

MIN_RSA_BITS = 2048
CURVES = (ec.SECP256R1, ec.SECP384R1)
MAX_DAYS = 365  # leaf certificates live less than 366 days


@dataclass(frozen=True, slots=True)
class SignedCertificate:
    certificate_pem: str
    ca_pem: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime


def check_csr(name: str, csr_pem: str) -> x509.CertificateSigningRequest:
    """The request, if it may be signed for partner ``name``; else ``CsrRejectedError``."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise CsrRejectedError("csr_pem is not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise CsrRejectedError("the request's signature does not verify")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRejectedError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, CURVES):
            raise CsrRejectedError("EC keys must be on P-256 or P-384")
    else:
        raise CsrRejectedError("the key must be RSA (2048 bits or more) or EC P-256/P-384")
    names = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [name]:
        raise CsrRejectedError(f"the request's subject must be CN={name}")
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        others = [str(v) for v in san if not (isinstance(v, x509.DNSName) and v.value == name)]
        if others:
            raise CsrRejectedError(f"the request names others than {name}: {', '.join(others)}")
    return csr


def sign_partner_csr(
    pki_dir: Path,
    name: str,
    csr_pem: str,
    *,
    days: int = MAX_DAYS,
    now: dt.datetime | None = None,
) -> SignedCertificate:
    """A client certificate for partner ``name`` on the request's key, valid ``days``."""
    csr = check_csr(name, csr_pem)
    days = max(1, min(days, MAX_DAYS))
    ca = ensure_ca(pki_dir)
    ca_cert, ca_key = load_cert(ca.cert), _load_key(ca.key)
    now = now or dt.datetime.now(dt.UTC)
    not_before = now.replace(microsecond=0) - dt.timedelta(minutes=5)
    not_after = now.replace(microsecond=0) + dt.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string(partner_subject_dn(name)))
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return SignedCertificate(
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        ca_cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert.serial_number,
        not_before,
        not_after,
    )
