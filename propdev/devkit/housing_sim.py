"""The simulated housing-and-utilities (ЖКХ) system: accounts, meters, bills, readings.

Its API, as the HTTPS server serves it (``housing_sim_server.py``; ``X-Api-Key`` on every call):

- ``GET /hcs/v1/accounts/{account_id}/bills[?period=YYYY-MM]`` → 200 ``{"account_id",
  "bills": [bill, ...]}`` newest first; ``bill`` is ``{"id", "period", "amount", "currency",
  "due_date", "status": "paid" | "unpaid", "lines": [{"service", "amount"}]}``.
- ``POST /hcs/v1/accounts/{account_id}/readings`` ``{"meter_id", "value", "taken_at"}`` with
  ``Idempotency-Key`` (required) → 201 ``{"reading_id", "meter_id", "value", "taken_at",
  "accepted_at"}``; the same key again replays the first answer (``Idempotent-Replayed: true``).
- errors ``{"error": code, "message"}``: 400 ``invalid_request``, 401 ``unauthorized``, 404
  ``unknown_account`` | ``unknown_meter``, 409 ``below_last_reading``, 500 ``internal_error``.

Faults (``faults``): ``ok``; ``error`` (every call 500); ``slow`` (every call waits
``latency_ms``, 5 s by default); ``outage`` (the connection is closed without an answer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from propdev.devkit.housing_estate import DEMO_ACCOUNTS, INITIAL_AGE, DemoAccount
from propdev.housing import MeterType, UpstreamDropped, UpstreamError, format_value, iso

DEFAULT_SLOW_MS = 5000
BILL_MONTHS = 3
SERVICES = ("cold_water", "hot_water", "electricity", "heating", "maintenance")


class UtilitiesFault(enum.StrEnum):
    OK = "ok"
    ERROR = "error"
    SLOW = "slow"
    OUTAGE = "outage"


@dataclass(slots=True)
class UtilitiesFaults:
    mode: UtilitiesFault = UtilitiesFault.OK
    latency_ms: int = 0

    @property
    def delay(self) -> float:
        if self.mode is UtilitiesFault.SLOW and self.latency_ms == 0:
            return DEFAULT_SLOW_MS / 1000
        return self.latency_ms / 1000

    def as_dict(self) -> dict[str, Any]:
        return {"mode": str(self.mode), "latency_ms": self.latency_ms}


@dataclass(slots=True)
class _Meter:
    type: MeterType
    value: Decimal
    taken_at: float


@dataclass(slots=True)
class _Account:
    meters: dict[str, _Meter]
    bills: list[dict[str, Any]] = field(default_factory=list)


def _month_start(at: dt.date, back: int) -> dt.date:
    month = at.month - 1 - back
    return dt.date(at.year + month // 12, month % 12 + 1, 1)


def _bills(account_id: str, today: dt.date) -> list[dict[str, Any]]:
    bills = []
    for back in range(1, BILL_MONTHS + 1):
        start = _month_start(today, back)
        period = f"{start.year:04d}-{start.month:02d}"
        seed = hashlib.sha256(f"{account_id}:{period}".encode()).digest()
        lines = [
            {"service": name, "amount": f"{300 + seed[i] * 7 + seed[i + 5] / 100:.2f}"}
            for i, name in enumerate(SERVICES)
        ]
        total = sum(Decimal(line["amount"]) for line in lines)
        due = _month_start(today, back - 1) + dt.timedelta(days=14)
        bills.append(
            {
                "id": f"bill-{account_id}-{period}",
                "period": period,
                "amount": f"{total:.2f}",
                "currency": "RUB",
                "due_date": due.isoformat(),
                "status": "unpaid" if back == 1 else "paid",
                "lines": lines,
            }
        )
    return bills


class UtilitiesSimulator:
    """The utilities system's state (an ``InProcessUtilities`` of ``propdev.housing``, which
    also defines the errors it raises); ``clock`` is epoch seconds."""

    def __init__(
        self,
        accounts: Iterable[DemoAccount] = DEMO_ACCOUNTS,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._accounts_seed = tuple(accounts)
        self.faults = UtilitiesFaults()
        self.received: list[dict[str, Any]] = []
        self._answers: dict[str, dict[str, Any]] = {}
        self._accounts: dict[str, _Account] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the demo state: faults off, nothing received."""
        now = self._clock()
        today = dt.datetime.fromtimestamp(now, dt.UTC).date()
        self.faults = UtilitiesFaults()
        self.received.clear()
        self._answers.clear()
        self._accounts = {
            a.account_id: _Account(
                {m.id: _Meter(m.type, m.initial, now - INITIAL_AGE) for m in a.meters},
                _bills(a.account_id, today),
            )
            for a in self._accounts_seed
        }

    async def _obey_faults(self) -> None:
        if self.faults.mode is UtilitiesFault.OUTAGE:
            raise UpstreamDropped()
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        if self.faults.mode is UtilitiesFault.ERROR:
            raise UpstreamError(500, "internal_error", "the utilities system failed")

    def _account(self, account_id: str) -> _Account:
        account = self._accounts.get(account_id)
        if account is None:
            raise UpstreamError(404, "unknown_account", f"no account {account_id!r}")
        return account

    async def bills(self, account_id: str, period: str | None = None) -> list[dict[str, Any]]:
        await self._obey_faults()
        bills = self._account(account_id).bills
        return [dict(b) for b in bills if period is None or b["period"] == period]

    def knows(self, key: str) -> bool:
        return key in self._answers

    async def submit(self, account_id: str, body: Any, key: str) -> dict[str, Any]:
        """Accept a reading (``{"meter_id", "value", "taken_at"}``) under ``key``."""
        await self._obey_faults()
        if key in self._answers:
            return self._answers[key]
        account = self._account(account_id)
        if not isinstance(body, dict):
            raise UpstreamError(400, "invalid_request", "expected a JSON object")
        meter = account.meters.get(str(body.get("meter_id")))
        if meter is None:
            raise UpstreamError(404, "unknown_meter", "no such meter on this account")
        try:
            value = Decimal(str(body.get("value")))
            taken = dt.datetime.fromisoformat(str(body.get("taken_at")).replace("Z", "+00:00"))
        except (InvalidOperation, ValueError):
            raise UpstreamError(400, "invalid_request", "value and taken_at required") from None
        if not value.is_finite() or value < meter.value:
            raise UpstreamError(409, "below_last_reading", "below the last reading")
        meter.value, meter.taken_at = value, taken.timestamp()
        answer = {
            "reading_id": f"rd-{uuid.uuid4().hex[:16]}",
            "meter_id": body["meter_id"],
            "value": format_value(value),
            "taken_at": iso(taken.timestamp()),
            "accepted_at": iso(self._clock()),
        }
        self._answers[key] = answer
        self.received.append({**answer, "account_id": account_id, "idempotency_key": key})
        return answer

    def last_value(self, meter_id: str) -> Decimal | None:
        for account in self._accounts.values():
            if meter_id in account.meters:
                return account.meters[meter_id].value
        return None
