"""The partner interface: what the node asks of every intercom/barrier vendor.

Adapters (``InProcessAdapter``, ``VendorHttpAdapter``) implement :class:`PartnerAdapter`;
``PartnerGateway`` wraps one with a timeout, a circuit breaker and a bulkhead, and is a
``PartnerAdapter`` itself. Every method may raise a ``PartnerError`` (see ``errors.py``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

DeviceKind = Literal["door", "barrier"]


@dataclass(frozen=True, slots=True)
class OpenResult:
    """The vendor's confirmation that it opened a device."""

    device_id: str
    vendor_command_id: str
    status: str = "opened"
    confirmed_at: dt.datetime | None = None
    accepted_at: dt.datetime | None = None  # asynchronous vendors: when it took the command


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What the vendor knows about one device right now."""

    device_id: str
    online: bool
    state: str
    last_seen: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device of the vendor's catalogue."""

    device_id: str
    kind: DeviceKind
    name: str


@runtime_checkable
class PartnerAdapter(Protocol):
    """A connection to one partner's device API."""

    @property
    def partner_id(self) -> str: ...

    async def open(
        self, device_id: str, *, request_id: str, traceparent: str | None = None
    ) -> OpenResult:
        """Ask the vendor to open ``device_id``; ``request_id`` makes repeats idempotent.

        Raises ``PartnerRefusedError`` when the vendor refuses, ``PartnerTimeoutError`` or
        ``PartnerUnavailableError`` when there is no usable answer.
        """
        ...

    async def device_status(self, device_id: str) -> DeviceStatus: ...

    async def list_devices(self) -> list[DeviceInfo]: ...

    async def close(self) -> None:
        """Release connections; idempotent."""
        ...
