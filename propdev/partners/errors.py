"""Errors of partner calls: refusals (answers) apart from failures (no usable answer)."""

from __future__ import annotations


class PartnerError(Exception):
    """Base class of partner errors."""


class PartnerRefusedError(PartnerError):
    """Raised when the vendor answered and refused (device offline, jammed, busy, denied, unknown).

    A refusal is an answer, not a failure: it does not count against the partner's circuit.
    ``reason`` is the vendor's machine-readable code, e.g. ``"device_offline"``.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message


class PartnerTimeoutError(PartnerError, TimeoutError):
    """Raised when the partner did not answer within the call's timeout."""


class PartnerUnavailableError(PartnerError, ConnectionError):
    """Raised when the partner cannot be reached or answered with a server error or garbage."""


class CircuitOpenError(PartnerError):
    """Raised at once, without calling the partner, while the partner's circuit is open.

    ``retry_after`` is the number of seconds after which a call may be tried again.
    """

    def __init__(self, partner_id: str, retry_after: float) -> None:
        super().__init__(f"circuit of partner {partner_id!r} is open; retry in {retry_after:.1f}s")
        self.partner_id = partner_id
        self.retry_after = retry_after


class BulkheadFullError(PartnerError):
    """Raised when the partner already has the maximum number of calls in flight."""

    def __init__(self, partner_id: str, max_in_flight: int) -> None:
        super().__init__(f"partner {partner_id!r} has {max_in_flight} calls in flight")
        self.partner_id = partner_id
        self.max_in_flight = max_in_flight


class SigningKeyError(ValueError):
    """Raised when a partner's request-signing key is unreadable or not of the configured
    algorithm (``PROPDEV_PARTNER_SIGNING``)."""


class RateLimitedError(BulkheadFullError):
    """Raised when a call would exceed the partner's configured rate (calls per second)."""

    def __init__(self, partner_id: str, rate: float) -> None:
        PartnerError.__init__(self, f"partner {partner_id!r} is called at most {rate:g}/s")
        self.partner_id = partner_id
        self.max_in_flight = 0
        self.rate = rate


class UnknownAdapterError(PartnerError, LookupError):
    """Raised when no adapter is registered under the name asked for."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no adapter {name!r}; registered: {', '.join(known)}")
        self.name = name
        self.known = known
