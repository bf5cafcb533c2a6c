"""Errors of the project PKI."""

from __future__ import annotations


class PKIError(Exception):
    """Base class of PKI errors."""


class UnknownPartnerError(PKIError, KeyError):
    """Raised when a partner has no certificate in the data dir."""


class CsrRejectedError(PKIError, ValueError):
    """Raised when a certificate signing request is refused (bad signature, weak key, a subject
    or name for another partner); says why, never signs."""
