"""Clients of the housing-and-utilities (ЖКХ) system: in-process and HTTPS.

The in-process client calls an :class:`InProcessUtilities` object (in embedded mode,
``propdev.devkit``'s ``UtilitiesSimulator``, handed in by the composition root), which answers
errors by raising :class:`UpstreamError` (or :class:`UpstreamDropped` for "no answer"). Both
clients raise the partner errors: a refusal (4xx with a code) is ``PartnerRefusedError(code)``,
an answer we cannot use (5xx, 401, 429, a dropped connection, garbage) is
``PartnerUnavailableError``, no answer in time ``PartnerTimeoutError``.
"""

from __future__ import annotations

import json
import ssl
from typing import Any, Protocol
from urllib.parse import quote

from yarl import URL

from propdev.partners import (
    PartnerRefusedError,
    PartnerSession,
    PartnerUnavailableError,
    VendorError,
)

API_PREFIX = "/hcs/v1"
UNAVAILABLE_4XX = frozenset({401, 407, 408, 429})


class UpstreamError(VendorError):
    """Raised when an in-process utilities system answers with an error (``status`` 4xx or
    5xx); the shape (status, code, message, ``body()``) of an in-process vendor's error."""


class UpstreamDropped(UpstreamError):  # a control-flow signal ("close the socket"): no suffix
    """Raised when an in-process utilities system closes the connection without an answer."""

    def __init__(self) -> None:
        super().__init__(0, "connection_dropped", "connection closed by the utilities system")


class InProcessUtilities(Protocol):
    """The utilities system's API (``/hcs/v1``) as an object in this process."""

    async def bills(self, account_id: str, period: str | None = None) -> list[dict[str, Any]]: ...

    async def submit(self, account_id: str, body: Any, key: str) -> dict[str, Any]: ...


class UtilitiesClient(Protocol):
    """The utilities system's API as the gateway needs it."""

    async def bills(self, account_id: str, period: str | None) -> list[dict[str, Any]]: ...

    async def submit_reading(
        self, account_id: str, reading: dict[str, Any], *, key: str
    ) -> dict[str, Any]: ...

    async def close(self) -> None: ...


def _error(status: int, code: str, message: str) -> Exception:
    if status >= 500 or status in UNAVAILABLE_4XX or not code:
        return PartnerUnavailableError(f"utilities: HTTP {status} ({code or 'no code'})")
    return PartnerRefusedError(code, message)


class InProcessUtilitiesClient:
    """The API over an ``InProcessUtilities`` in this process (embedded mode)."""

    def __init__(self, sim: InProcessUtilities) -> None:
        self.sim = sim

    async def bills(self, account_id: str, period: str | None) -> list[dict[str, Any]]:
        try:
            return await self.sim.bills(account_id, period)
        except UpstreamDropped as exc:
            raise PartnerUnavailableError(exc.message) from exc
        except UpstreamError as exc:
            raise _error(exc.status, exc.code, exc.message) from exc

    async def submit_reading(
        self, account_id: str, reading: dict[str, Any], *, key: str
    ) -> dict[str, Any]:
        try:
            return await self.sim.submit(account_id, json.loads(json.dumps(reading)), key)
        except UpstreamDropped as exc:
            raise PartnerUnavailableError(exc.message) from exc
        except UpstreamError as exc:
            raise _error(exc.status, exc.code, exc.message) from exc

    async def close(self) -> None:
        """The in-process system belongs to whoever made it."""


class HttpUtilitiesClient:
    """The API over HTTPS: one keep-alive session, the project CA trusted, ``X-Api-Key``."""

    def __init__(
        self, base_url: str, *, ssl_context: ssl.SSLContext, api_key: str, timeout: float
    ) -> None:
        self._base = base_url.rstrip("/")
        self._http = PartnerSession(
            "utilities",
            ssl_context=ssl_context,
            timeout=timeout,
            headers={"X-Api-Key": api_key},
            max_connections=32,
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = URL(self._base + path)
        if params:
            url = url.with_query(params)
        status, answer = await self._http.send(method, url, headers, body)
        if status >= 400:
            code = answer.get("error") if isinstance(answer, dict) else None
            message = answer.get("message", "") if isinstance(answer, dict) else ""
            raise _error(status, str(code or ""), str(message))
        if not isinstance(answer, dict):
            raise PartnerUnavailableError("utilities: the answer is not a JSON object")
        return answer

    async def bills(self, account_id: str, period: str | None) -> list[dict[str, Any]]:
        answer = await self._call(
            "GET",
            f"{API_PREFIX}/accounts/{quote(account_id, safe='')}/bills",
            params={"period": period} if period else None,
        )
        bills = answer.get("bills")
        if not isinstance(bills, list):
            raise PartnerUnavailableError("utilities: no bills in the answer")
        return [b for b in bills if isinstance(b, dict)]

    async def submit_reading(
        self, account_id: str, reading: dict[str, Any], *, key: str
    ) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call(
            "POST",
            f"{API_PREFIX}/accounts/{quote(account_id, safe='')}/readings",
            body=reading,
            headers={"Idempotency-Key": key},
        )
        return answer

    async def close(self) -> None:
        await self._http.close()
