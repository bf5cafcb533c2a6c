"""The project CA: a development root, the node's server certificate, partners' client certificates.

Files live under ``<data dir>/pki/``: ``ca.pem``/``ca-key.pem``, ``server/{cert,key}.pem``,
``partners/<name>/{cert,key}.pem``. Private keys are written 0600. Every function is
idempotent: a certificate that exists, is valid for long enough and covers what is asked is kept.

Nodes of one machine may share the folder and start together: issuing (the check, the new key
and the new certificate) holds an exclusive ``flock`` on ``<pki>/.issue.lock`` and checks again
once it has it, so two nodes never write one's key beside the other's certificate, and each
file is written under a temporary name of its own, then renamed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from propdev.pki.errors import UnknownPartnerError

CA_DAYS = 3650
LEAF_DAYS = 365  # Mozilla "intermediate": leaf certificates live less than 366 days
RENEW_BEFORE = dt.timedelta(days=30)
PARTNER_ORG = "propdev partners"


@dataclass(frozen=True, slots=True)
class CertPaths:
    cert: Path
    key: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def _issuing(pki_dir: Path) -> Iterator[None]:
    """One issuer at a time in ``pki_dir``, across processes and threads (an ``flock`` on a
    file of its own; each holder opens it anew, so threads of one process exclude each other
    too)."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    with open(pki_dir / ".issue.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tmp(path: Path) -> Path:
    """A temporary name beside ``path`` that no other process or thread uses."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = _tmp(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, path)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def ca_paths(pki_dir: Path) -> CertPaths:
    return CertPaths(pki_dir / "ca.pem", pki_dir / "ca-key.pem")


def ensure_ca(pki_dir: Path) -> CertPaths:
    """Create the development root CA unless it exists."""
    paths = ca_paths(pki_dir)
    if paths.cert.exists() and paths.key.exists():
        return paths
    with _issuing(pki_dir):
        return _ensure_ca(pki_dir)


def _ensure_ca(pki_dir: Path) -> CertPaths:
    """``ensure_ca`` with the issuing lock held."""
    paths = ca_paths(pki_dir)
    if paths.cert.exists() and paths.key.exists():
        return paths
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "propdev"),
            x509.NameAttribute(NameOID.COMMON_NAME, "propdev development CA"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(paths.key, key)
    _write_cert(paths.cert, cert)
    return paths


def _sans(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _still_good(path: Path, hosts: tuple[str, ...] = ()) -> bool:
    if not path.exists():
        return False
    cert = load_cert(path)
    if cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return False
    if hosts:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
        have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
        if not set(hosts) <= have:
            return False
    return True


def _issue(
    pki_dir: Path,
    paths: CertPaths,
    subject: x509.Name,
    *,
    usage: x509.ObjectIdentifier,
    hosts: tuple[str, ...] = (),
) -> CertPaths:
    ca = _ensure_ca(pki_dir)  # the caller holds the issuing lock
    ca_cert, ca_key = load_cert(ca.cert), _load_key(ca.key)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(hosts)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(paths.key, key)
    _write_cert(paths.cert, cert)
    return paths


def ensure_server_cert(
    pki_dir: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), *, name: str = "server"
) -> CertPaths:
    """A TLS server certificate from the project CA covering ``hosts``."""
    paths = CertPaths(pki_dir / name / "cert.pem", pki_dir / name / "key.pem")
    if _still_good(paths.cert, hosts) and paths.key.exists():
        return paths
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "propdev"),
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
        ]
    )
    with _issuing(pki_dir):
        if _still_good(paths.cert, hosts) and paths.key.exists():
            return paths  # another node issued it while this one waited
        return _issue(pki_dir, paths, subject, usage=ExtendedKeyUsageOID.SERVER_AUTH, hosts=hosts)


def partner_subject_dn(name: str) -> str:
    """The RFC 4514 subject of partner ``name``'s client certificate."""
    return f"CN={name},O={PARTNER_ORG}"


def partner_paths(pki_dir: Path, name: str) -> CertPaths:
    base = pki_dir / "partners" / name
    return CertPaths(base / "cert.pem", base / "key.pem")


def issue_partner_cert(pki_dir: Path, name: str, *, force: bool = False) -> CertPaths:
    """A client certificate for partner ``name`` (kept if valid unless ``force``)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid partner name: {name!r}")
    paths = partner_paths(pki_dir, name)
    if not force and _still_good(paths.cert) and paths.key.exists():
        return paths
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, PARTNER_ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    with _issuing(pki_dir):  # a forced re-issue replaces; two at once leave a matching pair
        return _issue(pki_dir, paths, subject, usage=ExtendedKeyUsageOID.CLIENT_AUTH)


def existing_partner_cert(pki_dir: Path, name: str) -> CertPaths:
    paths = partner_paths(pki_dir, name)
    if not (paths.cert.exists() and paths.key.exists()):
        raise UnknownPartnerError(name)
    return paths
