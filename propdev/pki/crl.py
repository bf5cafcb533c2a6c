"""Revocation of partners' certificates: a CRL signed by the project CA, ``<pki>/crl.pem``.

``revoke_partner(pki_dir, name)`` adds the partner's current certificate to the CRL;
``ensure_crl`` creates an empty CRL or re-signs one that nears its ``nextUpdate`` (a CRL past
it fails every client handshake: fail closed). The node loads the CRL into its server context
with ``VERIFY_CRL_CHECK_LEAF`` and reloads it on change or SIGHUP (``propdev.pki.reload``),
so a revoked certificate fails the TLS handshake.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from propdev.pki.ca import _load_key, ca_paths, ensure_ca, existing_partner_cert, load_cert

CRL_DAYS = 30
REFRESH_BEFORE = dt.timedelta(days=7)


def crl_path(pki_dir: Path) -> Path:
    return pki_dir / "crl.pem"


def load_crl(pki_dir: Path) -> x509.CertificateRevocationList | None:
    path = crl_path(pki_dir)
    if not path.exists():
        return None
    return x509.load_pem_x509_crl(path.read_bytes())


def revoked_serials(pki_dir: Path) -> set[int]:
    crl = load_crl(pki_dir)
    return {entry.serial_number for entry in crl} if crl is not None else set()


_current: dict[Path, tuple[tuple[int, int], frozenset[int]]] = {}


def current_revoked(pki_dir: Path) -> frozenset[int]:
    """The serials the CRL revokes now: read again only when the file changed (a ``stat`` per
    call), so a check on every partner request sees a revocation at once -- also on
    connections whose handshake passed before it (the TLS context checks new ones)."""
    path = crl_path(pki_dir)
    try:
        info = path.stat()
    except FileNotFoundError:
        return frozenset()
    stamp = (info.st_mtime_ns, info.st_size)
    hit = _current.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    serials = frozenset(revoked_serials(pki_dir))
    _current[path] = (stamp, serials)
    return serials


def _write_crl(
    pki_dir: Path,
    revoked: dict[int, dt.datetime],
    *,
    now: dt.datetime,
    previous: x509.CertificateRevocationList | None,
) -> Path:
    ca = ensure_ca(pki_dir)
    ca_cert, ca_key = load_cert(ca.cert), _load_key(ca.key)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    # Never in the future (OpenSSL refuses a CRL "not yet valid"); a minute back for skew.
    last = now.replace(microsecond=0) - dt.timedelta(minutes=1)
    number = 1
    if previous is not None:
        try:
            number = (
                previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
            )
        except x509.ExtensionNotFound:
            pass
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(last)
        .next_update(last + dt.timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    for serial, when in sorted(revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    path = crl_path(pki_dir)
    tmp = path.with_name(f".crl.{os.getpid()}.tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, path)
    return path


def ensure_crl(pki_dir: Path, *, now: dt.datetime | None = None) -> Path:
    """An up-to-date CRL: created empty if missing, re-signed if it nears ``nextUpdate``."""
    now = now or dt.datetime.now(dt.UTC)
    crl = load_crl(pki_dir)
    if crl is not None:
        next_update = crl.next_update_utc
        if next_update is not None and next_update - now > REFRESH_BEFORE:
            return crl_path(pki_dir)
    revoked = {e.serial_number: e.revocation_date_utc for e in crl} if crl is not None else {}
    return _write_crl(pki_dir, revoked, now=now, previous=crl)


def revoke_partner(pki_dir: Path, name: str, *, now: dt.datetime | None = None) -> int:
    """Put partner ``name``'s current certificate on the CRL; return its serial number."""
    now = now or dt.datetime.now(dt.UTC)
    cert = load_cert(existing_partner_cert(pki_dir, name).cert)
    crl = load_crl(pki_dir)
    revoked = {e.serial_number: e.revocation_date_utc for e in crl} if crl is not None else {}
    revoked.setdefault(cert.serial_number, now.replace(microsecond=0))
    _write_crl(pki_dir, revoked, now=now, previous=crl)
    return cert.serial_number


def revoke_serials(pki_dir: Path, serials: list[int], *, now: dt.datetime | None = None) -> None:
    """Put these certificates (by serial) on the CRL: certificates signed from partners' CSRs,
    of which we keep no file."""
    now = now or dt.datetime.now(dt.UTC)
    crl = load_crl(pki_dir)
    revoked = {e.serial_number: e.revocation_date_utc for e in crl} if crl is not None else {}
    for serial in serials:
        revoked.setdefault(serial, now.replace(microsecond=0))
    _write_crl(pki_dir, revoked, now=now, previous=crl)


def ca_file(pki_dir: Path) -> Path:
    return ca_paths(pki_dir).cert
