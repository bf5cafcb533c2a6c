"""The utilities gateway's logic: a resident's bills, and meter readings checked, forwarded
with an idempotency key, stored and audited.

The resident is identified by the token only: the account is the one of the apartment they
live in (``UtilityStore.account_of``), never a parameter of the request.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from propdev.config import Settings
from propdev.housing.client import (
    HttpUtilitiesClient,
    InProcessUtilities,
    InProcessUtilitiesClient,
    UtilitiesClient,
)
from propdev.housing.errors import InvalidReadingError, NoAccountError
from propdev.housing.gateway import UPSTREAM, CallObserver, UtilitiesGateway
from propdev.housing.meters import Reading, check_progress, format_value, iso, parse_reading
from propdev.housing.store import Account, UtilityStore
from propdev.partners import PartnerRefusedError, StateListener, vendor_api_key
from propdev.pki import client_context
from propdev.storage import Database

log = structlog.get_logger()

# Refusals of the utilities system that are about the reading: field and reason for the 422.
UPSTREAM_INVALID = {
    "below_last_reading": ("value", "below_last_reading"),
    "unknown_meter": ("meter_id", "not_your_meter"),
    "invalid_request": ("body", "refused_by_utilities"),
}


class UtilitiesService:
    """Bills and meter readings for residents, through the guarded ``UtilitiesGateway``."""

    def __init__(
        self,
        *,
        store: UtilityStore,
        gateway: UtilitiesGateway,
        simulator: InProcessUtilities | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.simulator = simulator
        self._clock = clock
        self._meter_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        db: Database,
        *,
        in_process: InProcessUtilities | None = None,
        on_state_change: StateListener | None = None,
        observe: CallObserver | None = None,
    ) -> UtilitiesService:
        """In-process over ``in_process`` (embedded mode: the composition root's simulator)
        unless ``settings.utilities_url`` is set; then HTTPS, trusting the project CA, with the
        API key of ``<data dir>/partners/utilities/api-key``. Timeout and breaker as for
        partners."""
        simulator: InProcessUtilities | None = None
        client: UtilitiesClient
        if settings.utilities_url is None:
            if in_process is None:
                raise ValueError("no PROPDEV_UTILITIES_URL: an in-process utilities system needed")
            simulator = in_process
            client = InProcessUtilitiesClient(simulator)
        else:
            client = HttpUtilitiesClient(
                settings.utilities_url,
                ssl_context=client_context(settings.pki_dir),
                api_key=vendor_api_key(settings.data_dir, UPSTREAM),
                timeout=settings.partner_timeout,
            )
        gateway = UtilitiesGateway(
            client,
            timeout=settings.partner_timeout,
            breaker_failures=settings.breaker_failures,
            breaker_reset=settings.breaker_reset,
            on_state_change=on_state_change,
            observe=observe,
        )
        return cls(store=UtilityStore(db), gateway=gateway, simulator=simulator)

    async def close(self) -> None:
        await self.gateway.close()

    async def account(self, user_id: str) -> Account:
        account = await self.store.account_of(user_id)
        if account is None:
            raise NoAccountError("no utilities account is linked to your apartment")
        return account

    async def bills(self, user_id: str, period: str | None) -> dict[str, Any]:
        """The bills of the caller's apartment (``period`` ``YYYY-MM`` narrows them)."""
        account = await self.account(user_id)
        bills = await self.gateway.bills(account.account_id, period)
        return {**account.as_dict(), "bills": bills}

    async def meters(self, user_id: str) -> dict[str, Any]:
        """The caller's meters, each with its last accepted reading."""
        account = await self.account(user_id)
        meters = []
        for meter in (await self.store.meters_of(account)).values():
            last = await self.store.last_reading(meter.id)
            meters.append(
                {
                    "id": meter.id,
                    "type": str(meter.type),
                    "unit": meter.kind.unit,
                    "serial": meter.serial,
                    "last_value": format_value(last.value) if last else None,
                    "last_taken_at": iso(last.taken_at) if last else None,
                }
            )
        return {**account.as_dict(), "meters": meters}

    async def submit(
        self, user_id: str, body: Any, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        """Check, forward and record a reading; (answer, replayed). A key seen before for this
        user answers what it answered then, and nothing is sent again."""
        account = await self.account(user_id)
        key = idempotency_key or uuid.uuid4().hex
        if idempotency_key is not None:
            known = await self.store.answer_for(user_id, key)
            if known is not None:
                return known, True
        meters = await self.store.meters_of(account)
        reading = parse_reading(body, meters, now=self._clock())
        meter = meters[reading.meter_id]
        lock = self._meter_locks.setdefault(meter.id, asyncio.Lock())
        async with lock:  # one reading of a meter at a time: monotonic against the last one
            try:
                check_progress(reading, meter, await self.store.last_reading(meter.id))
            except InvalidReadingError as exc:
                await self._refused(user_id, reading, exc.reason)
                raise
            upstream_key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"propdev:reading:{user_id}:{key}"))
            try:
                upstream = await self.gateway.submit_reading(
                    account.account_id, reading.as_dict(), key=upstream_key
                )
            except PartnerRefusedError as exc:
                if exc.reason not in UPSTREAM_INVALID:
                    raise
                field, reason = UPSTREAM_INVALID[exc.reason]
                await self._refused(user_id, reading, f"utilities:{exc.reason}")
                raise InvalidReadingError(
                    field, reason, f"the utilities system refused it ({exc.reason})"
                ) from exc
            answer = {
                "status": "accepted",
                **reading.as_dict(),
                "account_id": account.account_id,
                "upstream_id": str(upstream.get("reading_id", "")),
                "accepted_at": upstream.get("accepted_at") or iso(self._clock()),
                "idempotency_key": key,
            }
            stored = await self.store.record(
                user_id=user_id,
                reading=reading,
                key=key,
                upstream_id=answer["upstream_id"],
                answer=answer,
            )
        log.info("meter_reading_accepted", meter=meter.id, type=str(meter.type))
        return stored, False

    async def _refused(self, user_id: str, reading: Reading, reason: str) -> None:
        log.info("meter_reading_refused", meter=reading.meter_id, reason=reason)
        await self.store.audit_refusal(user_id=user_id, reading=reading, reason=reason)
