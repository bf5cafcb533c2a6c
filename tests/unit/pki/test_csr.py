"""Partners' CSRs: signed for their own name and a strong key only; nothing else."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from propdev.pki import (
    CsrRejectedError,
    ensure_ca,
    partner_subject_dn,
    revoke_serials,
    sign_partner_csr,
)
from propdev.pki.crl import current_revoked

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def csr(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
    cn: str,
    *,
    dns: list[str] | None = None,
) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if dns is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


def test_a_p256_request_is_signed_for_the_partner_with_the_lifetime_asked(tmp_path: Path) -> None:
    ensure_ca(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    signed = sign_partner_csr(tmp_path, "vendor-c", csr(key, "vendor-c"), days=30, now=NOW)
    cert = x509.load_pem_x509_certificate(signed.certificate_pem.encode())
    assert cert.subject == x509.Name.from_rfc4514_string(partner_subject_dn("vendor-c"))
    assert cert.public_key() == key.public_key()
    assert cert.not_valid_after_utc - NOW == dt.timedelta(days=30)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = x509.load_pem_x509_certificate(signed.ca_pem.encode())
    cert.verify_directly_issued_by(ca)


def test_an_rsa_2048_request_with_its_own_name_as_dns_name_is_signed(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signed = sign_partner_csr(tmp_path, "vendor-c", csr(key, "vendor-c", dns=["vendor-c"]))
    assert signed.serial > 0


def test_lifetimes_past_a_year_are_cut_to_one(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    signed = sign_partner_csr(tmp_path, "v", csr(key, "v"), days=5000, now=NOW)
    assert signed.not_after - NOW == dt.timedelta(days=365)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: csr(ec.generate_private_key(ec.SECP256R1()), "acme"), "CN=vendor-c"),
        (
            lambda: csr(ec.generate_private_key(ec.SECP256R1()), "vendor-c", dns=["acme"]),
            "names others",
        ),
        (
            lambda: csr(rsa.generate_private_key(public_exponent=65537, key_size=1024), "vendor-c"),
            "2048",
        ),
        (lambda: csr(ec.generate_private_key(ec.SECP521R1()), "vendor-c"), "P-256 or P-384"),
        (lambda: csr(ed25519.Ed25519PrivateKey.generate(), "vendor-c"), "RSA"),
        (lambda: "not a request", "not a PEM"),
    ],
    ids=["other-name", "other-dns-name", "rsa-1024", "p-521", "ed25519", "garbage"],
)
def test_a_request_for_another_name_or_a_weak_key_is_refused(
    tmp_path: Path, make: object, reason: str
) -> None:
    assert callable(make)
    with pytest.raises(CsrRejectedError, match=reason):
        sign_partner_csr(tmp_path, "vendor-c", make())


def test_a_request_whose_signature_does_not_verify_is_refused(tmp_path: Path) -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    good = x509.load_pem_x509_csr(csr(key, "vendor-c").encode())
    # The same request body signed by another key, with the first key's public key inside.
    forged = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(good.subject)
        .sign(other, hashes.SHA256())
    )
    der = bytearray(forged.public_bytes(serialization.Encoding.DER))
    mine = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = other.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    start = bytes(der).index(theirs)
    der[start : start + len(theirs)] = mine
    pem = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(CsrRejectedError, match="signature"):
        sign_partner_csr(tmp_path, "vendor-c", pem)


def test_revoked_serials_are_on_the_crl(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signed = sign_partner_csr(tmp_path, "v", csr(key, "v"))
    assert signed.serial not in current_revoked(tmp_path)
    revoke_serials(tmp_path, [signed.serial])
    assert signed.serial in current_revoked(tmp_path)
