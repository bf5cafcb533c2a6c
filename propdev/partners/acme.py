"""The "acme" vendor: a differently shaped API that accepts now and confirms later.

Acme's API (``/acme/v2``, ``Authorization: Bearer <api key>``):

- ``POST /acme/v2/locks/{uid}/commands`` ``{"action": "unlock", "reference": <our request id>}``
  with ``Idempotency-Key`` (our request id) and ``traceparent`` → 202 ``{"accepted": true,
  "ticket": T}``; refusals → 4xx ``{"accepted": false, "code": "E_…", "detail"}``.
- the outcome comes later as a callback to ``/partner/v1/events``: ``{"type":
  "command_result", "ticket": T, "result": "done" | "failed", "error": "E_…"}``.
- ``GET /acme/v2/locks`` → ``{"items": [lock]}``, ``GET /acme/v2/locks/{uid}`` → ``lock``, where
  ``lock`` is ``{"uid", "type": "DOOR" | "GATE", "label", "connected", "condition"}``.

``AcmeAdapter.open`` submits, then waits for the ticket's result (``Confirmations``); the
gateway's timeout bounds the whole (no result in time → 504). Acme's error codes map to the
refusal reasons every adapter uses (``ACME_REASONS``).
"""

from __future__ import annotations

import datetime as dt
import ssl
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from yarl import URL

from propdev.partners.base import DeviceInfo, DeviceKind, DeviceStatus, OpenResult
from propdev.partners.confirmations import Confirmation, Confirmations
from propdev.partners.credentials import ClientCredentialsToken, api_key_of, token_source
from propdev.partners.errors import PartnerRefusedError, PartnerUnavailableError
from propdev.partners.httpsig import RequestSigner
from propdev.partners.inprocess import ConnectionDropped, VendorError
from propdev.partners.session import PartnerSession

if TYPE_CHECKING:
    from propdev.partners.plugins import AdapterSpec

API_PREFIX = "/acme/v2"
ACME_REASONS = {
    "E_LOCK_OFFLINE": "device_offline",
    "E_JAMMED": "device_jammed",
    "E_BUSY": "device_busy",
    "E_DENIED": "denied",
    "E_UNKNOWN_LOCK": "unknown_device",
    "E_BAD_REQUEST": "invalid_request",
}
KINDS: dict[str, DeviceKind] = {"DOOR": "door", "GATE": "barrier"}
UNAVAILABLE_4XX = frozenset({401, 407, 408, 429})


def reason_of(code: str) -> str:
    """Our refusal reason for an acme error code."""
    return ACME_REASONS.get(code, code.lower())


class AcmeClient(Protocol):
    """Acme's API as the adapter needs it; raises ``PartnerError`` subclasses."""

    async def submit(self, uid: str, *, reference: str, traceparent: str | None) -> str: ...

    async def lock(self, uid: str) -> dict[str, Any]: ...

    async def locks(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class InProcessAcme(Protocol):
    """Acme's API as an object in this process (embedded mode: ``propdev.devkit``'s
    ``AcmeSimulator``); raises ``VendorError`` with acme's code, or ``ConnectionDropped``."""

    async def submit(self, uid: str, *, reference: str, traceparent: str | None) -> str: ...

    async def lock(self, uid: str) -> dict[str, Any]: ...

    async def locks(self) -> list[dict[str, Any]]: ...


def _refusal_or_failure(status: int, code: str, message: str) -> Exception:
    if status >= 500 or status in UNAVAILABLE_4XX or not code:
        return PartnerUnavailableError(f"acme: HTTP {status} ({code or 'no code'})")
    return PartnerRefusedError(reason_of(code), message)


class AcmeInProcessClient:
    """Acme's API over an ``InProcessAcme`` in this process."""

    def __init__(self, sim: InProcessAcme) -> None:
        self._sim = sim

    async def submit(self, uid: str, *, reference: str, traceparent: str | None) -> str:
        try:
            return await self._sim.submit(uid, reference=reference, traceparent=traceparent)
        except ConnectionDropped as exc:
            raise PartnerUnavailableError(exc.message) from exc
        except VendorError as exc:
            raise _refusal_or_failure(exc.status, exc.code, exc.message) from exc

    async def lock(self, uid: str) -> dict[str, Any]:
        try:
            return await self._sim.lock(uid)
        except ConnectionDropped as exc:
            raise PartnerUnavailableError(exc.message) from exc
        except VendorError as exc:
            raise _refusal_or_failure(exc.status, exc.code, exc.message) from exc

    async def locks(self) -> list[dict[str, Any]]:
        try:
            return await self._sim.locks()
        except ConnectionDropped as exc:
            raise PartnerUnavailableError(exc.message) from exc
        except VendorError as exc:
            raise _refusal_or_failure(exc.status, exc.code, exc.message) from exc

    async def close(self) -> None:
        """The in-process vendor belongs to whoever made it."""


class AcmeHttpClient:
    """Acme's API over HTTPS (one keep-alive session, the project CA trusted); with a
    ``signer``, every request signed (RFC 9421, ``httpsig``)."""

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext,
        api_key: str | None,
        timeout: float,
        signer: RequestSigner | None = None,
        token: ClientCredentialsToken | None = None,
        max_connections: int = 64,
    ) -> None:
        self._base = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = PartnerSession(
            "acme",
            ssl_context=ssl_context,
            timeout=timeout,
            headers=headers,
            signer=signer,
            bearer=token,
            max_connections=max_connections,
        )

    async def submit(self, uid: str, *, reference: str, traceparent: str | None) -> str:
        headers = {"Idempotency-Key": reference}
        if traceparent:
            headers["traceparent"] = traceparent
        body = await self._request(
            "POST",
            f"/locks/{quote(uid, safe='')}/commands",
            headers,
            {"action": "unlock", "reference": reference},
        )
        ticket = body.get("ticket")
        if body.get("accepted") is not True or not isinstance(ticket, str) or not ticket:
            raise PartnerUnavailableError(f"acme: unexpected answer to a command: {body!r}")
        return ticket

    async def lock(self, uid: str) -> dict[str, Any]:
        return await self._request("GET", f"/locks/{quote(uid, safe='')}")

    async def locks(self) -> list[dict[str, Any]]:
        items = (await self._request("GET", "/locks")).get("items")
        if not isinstance(items, list):
            raise PartnerUnavailableError("acme: unexpected lock list")
        return items

    async def close(self) -> None:
        await self._http.close()

    async def _request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = URL(self._base + API_PREFIX + path, encoded=True)
        status, parsed = await self._http.send(method, url, headers, body)
        if 200 <= status < 300 and isinstance(parsed, dict):
            return parsed
        code = parsed.get("code") if isinstance(parsed, dict) else None
        detail = parsed.get("detail") if isinstance(parsed, dict) else None
        raise _refusal_or_failure(status, code if isinstance(code, str) else "", str(detail or ""))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AcmeAdapter:
    """A ``PartnerAdapter`` (and ``ConfirmsByCallback``) for acme, over any ``AcmeClient``."""

    def __init__(self, partner_id: str, client: AcmeClient) -> None:
        self._partner_id = partner_id
        self._client = client
        self.confirmations = Confirmations()

    @classmethod
    def from_spec(cls, spec: AdapterSpec) -> AcmeAdapter:
        """The plug-in entry (``propdev.partners.plugins``): acme over HTTPS; an API key or an
        OAuth token as ``Authorization: Bearer``."""
        client = AcmeHttpClient(
            spec.base_url,
            ssl_context=spec.ssl_context,
            api_key=api_key_of(spec.credential),
            timeout=spec.timeout,
            signer=spec.signer,
            token=token_source(spec.credential, ssl_context=spec.ssl_context, timeout=spec.timeout),
            max_connections=spec.max_connections,
        )
        return cls(spec.partner_id, client)

    @property
    def partner_id(self) -> str:
        return self._partner_id

    async def open(
        self, device_id: str, *, request_id: str, traceparent: str | None = None
    ) -> OpenResult:
        ticket = await self._client.submit(device_id, reference=request_id, traceparent=traceparent)
        accepted_at = _utcnow()
        result = await self.confirmations.wait(ticket)
        if not result.ok:
            raise PartnerRefusedError(reason_of(result.error or "E_FAILED"), "acme: failed")
        return OpenResult(device_id, ticket, "opened", result.at or _utcnow(), accepted_at)

    def confirm(self, confirmation: Confirmation) -> bool:
        return self.confirmations.resolve(confirmation)

    async def device_status(self, device_id: str) -> DeviceStatus:
        lock = await self._client.lock(device_id)
        try:
            return DeviceStatus(str(lock["uid"]), bool(lock["connected"]), str(lock["condition"]))
        except (KeyError, TypeError) as exc:
            raise PartnerUnavailableError(f"acme: unexpected lock: {exc!r}") from exc

    async def list_devices(self) -> list[DeviceInfo]:
        try:
            return [
                DeviceInfo(str(lock["uid"]), KINDS[lock["type"]], str(lock["label"]))
                for lock in await self._client.locks()
            ]
        except (KeyError, TypeError) as exc:
            raise PartnerUnavailableError(f"acme: unexpected lock: {exc!r}") from exc

    async def close(self) -> None:
        await self._client.close()
