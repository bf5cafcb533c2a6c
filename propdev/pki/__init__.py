"""The project PKI: development CA, server certificates, partners' client certificates, TLS."""

from __future__ import annotations

from propdev.pki.ca import (
    CertPaths,
    ca_paths,
    ensure_ca,
    ensure_server_cert,
    existing_partner_cert,
    issue_partner_cert,
    load_cert,
    partner_paths,
    partner_subject_dn,
)
from propdev.pki.crl import revoke_serials
from propdev.pki.csr import SignedCertificate, check_csr, sign_partner_csr
from propdev.pki.errors import CsrRejectedError, PKIError, UnknownPartnerError
from propdev.pki.tls import client_context, outbound_context, server_context

__all__ = (
    "CertPaths",
    "CsrRejectedError",
    "PKIError",
    "SignedCertificate",
    "UnknownPartnerError",
    "ca_paths",
    "check_csr",
    "client_context",
    "ensure_ca",
    "ensure_server_cert",
    "existing_partner_cert",
    "issue_partner_cert",
    "load_cert",
    "outbound_context",
    "partner_paths",
    "partner_subject_dn",
    "revoke_serials",
    "server_context",
    "sign_partner_csr",
)
