"""The in-process adapter: calls a vendor object living in this process directly, no network.

The vendor is any :class:`InProcessVendor` (in embedded mode, ``propdev.devkit``'s
``VendorSimulator``, which the composition root hands in). It answers refusals and failures by
raising :class:`VendorError` (HTTP status, error code, message), or :class:`ConnectionDropped`
for "no answer"; the adapter turns them into the partner errors the HTTPS adapter raises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from propdev.partners.base import DeviceInfo, DeviceStatus, OpenResult
from propdev.partners.errors import PartnerRefusedError, PartnerUnavailableError

T = TypeVar("T")


class VendorError(Exception):
    """Raised when an in-process vendor answers with an error (``status`` 4xx or 5xx)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class ConnectionDropped(VendorError):  # a control-flow signal ("close the socket"): no suffix
    """Raised when an in-process vendor closes the connection without an answer."""

    def __init__(self, message: str = "connection closed by the vendor") -> None:
        super().__init__(0, "connection_dropped", message)


class VendorAnswer(Protocol):
    """An in-process vendor's answer to an accepted open."""

    @property
    def device_id(self) -> str: ...

    @property
    def command_id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def confirmed_at(self) -> dt.datetime: ...


class InProcessVendor(Protocol):
    """A vendor of the REST protocol (``/vendor/v1``) as an object in this process; devices
    are ``{"device_id", "kind", "name", "online", "state", "last_seen"}``."""

    async def open(
        self, device_id: str, request_id: str, traceparent: str | None = None
    ) -> VendorAnswer: ...

    async def device(self, device_id: str) -> dict[str, Any]: ...

    async def list_devices(self) -> list[dict[str, Any]]: ...


def _translate(exc: VendorError) -> Exception:
    """The partner error our HTTP adapter would raise for the same vendor answer."""
    if isinstance(exc, ConnectionDropped) or exc.status >= 500 or exc.status in (401, 429):
        return PartnerUnavailableError(exc.message)
    return PartnerRefusedError(exc.code, exc.message)


async def _call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except VendorError as exc:
        raise _translate(exc) from exc


def _when(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


class InProcessAdapter:
    """A ``PartnerAdapter`` over a vendor living in this process (embedded mode, no network)."""

    def __init__(self, sim: InProcessVendor, partner_id: str = "simulator") -> None:
        self._sim = sim
        self._partner_id = partner_id

    @property
    def partner_id(self) -> str:
        return self._partner_id

    async def open(
        self, device_id: str, *, request_id: str, traceparent: str | None = None
    ) -> OpenResult:
        answer = await _call(self._sim.open(device_id, request_id, traceparent))
        return OpenResult(answer.device_id, answer.command_id, answer.status, answer.confirmed_at)

    async def device_status(self, device_id: str) -> DeviceStatus:
        device = await _call(self._sim.device(device_id))
        return DeviceStatus(
            device_id, device["online"], device["state"], _when(device["last_seen"])
        )

    async def list_devices(self) -> list[DeviceInfo]:
        devices = await _call(self._sim.list_devices())
        return [DeviceInfo(d["device_id"], d["kind"], d["name"]) for d in devices]

    async def close(self) -> None:
        """Nothing to release: the vendor object belongs to whoever created it."""
