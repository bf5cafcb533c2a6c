"""The in-process adapter: calls the ``VendorSimulator`` object directly, no network."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import Any, TypeVar

from propdev.partners.base import DeviceInfo, DeviceStatus, OpenResult
from propdev.partners.errors import PartnerRefusedError, PartnerUnavailableError
from propdev.partners.simulator.state import ConnectionDropped, VendorError, VendorSimulator

T = TypeVar("T")


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
    """A ``PartnerAdapter`` over a simulator living in this process (the default, fastest path)."""

    def __init__(self, sim: VendorSimulator, partner_id: str = "simulator") -> None:
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
        """Nothing to release: the simulator belongs to whoever created it."""
