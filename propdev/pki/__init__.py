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
from propdev.pki.errors import PKIError, UnknownPartnerError
from propdev.pki.tls import client_context, server_context

__all__ = (
    "CertPaths",
    "PKIError",
    "UnknownPartnerError",
    "ca_paths",
    "client_context",
    "ensure_ca",
    "ensure_server_cert",
    "existing_partner_cert",
    "issue_partner_cert",
    "load_cert",
    "partner_paths",
    "partner_subject_dn",
    "server_context",
)
