"""Errors of the project PKI."""

from __future__ import annotations


class PKIError(Exception):
    """Base class of PKI errors."""


class UnknownPartnerError(PKIError, KeyError):
    """Raised when a partner has no certificate in the data dir."""
