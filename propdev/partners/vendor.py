"""The HTTPS adapter to a vendor's REST API (the simulator's, see
``propdev/devkit/vendor_sim/app.py``).

One keep-alive ``PartnerSession`` per adapter (``session.py``), closed by ``close()``. The
vendor's certificate is checked against the ``ssl_context`` given (the project CA's
``client_context``). Our request id travels as ``Idempotency-Key``, the W3C trace
context as ``traceparent``, our credentials as ``X-Api-Key``. With a ``signer`` (a partner named
in ``PROPDEV_PARTNER_SIGNING``) every request carries an RFC 9421 signature (``httpsig``).

Answers map to: 2xx → result; 401 (our key), 429 and 5xx → ``PartnerUnavailableError``; other
4xx with a JSON ``{"error": code}`` → ``PartnerRefusedError(code)``; a connection or TLS
failure or a body that is not the expected JSON → ``PartnerUnavailableError``; no answer in
``timeout`` seconds → ``PartnerTimeoutError``.
"""

from __future__ import annotations

import datetime as dt
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from yarl import URL

from propdev.partners.base import DeviceInfo, DeviceStatus, OpenResult
from propdev.partners.credentials import ClientCredentialsToken, api_key_of, token_source
from propdev.partners.errors import PartnerRefusedError, PartnerUnavailableError
from propdev.partners.httpsig import RequestSigner
from propdev.partners.session import PartnerSession

if TYPE_CHECKING:
    from propdev.partners.plugins import AdapterSpec

API_PREFIX = "/vendor/v1"
UNAVAILABLE_4XX = frozenset({401, 407, 408, 429})


def _when(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 time, got {value!r}")
    return dt.datetime.fromisoformat(value)


class VendorHttpAdapter:
    """A ``PartnerAdapter`` speaking HTTPS+JSON to the vendor at ``base_url``."""

    def __init__(
        self,
        partner_id: str,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext,
        api_key: str | None,
        timeout: float,
        max_connections: int = 64,
        signer: RequestSigner | None = None,
        token: ClientCredentialsToken | None = None,
    ) -> None:
        self._partner_id = partner_id
        self._base = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if api_key:
            headers["X-Api-Key"] = api_key
        self._http = PartnerSession(
            partner_id,
            ssl_context=ssl_context,
            timeout=timeout,
            headers=headers,
            max_connections=max_connections,
            signer=signer,
            bearer=token,
        )

    @classmethod
    def from_spec(cls, spec: AdapterSpec) -> VendorHttpAdapter:
        """The plug-in entry (``propdev.partners.plugins``): an API key as ``X-Api-Key``, OAuth
        client credentials as ``Authorization: Bearer``."""
        return cls(
            spec.partner_id,
            spec.base_url,
            ssl_context=spec.ssl_context,
            api_key=api_key_of(spec.credential),
            timeout=spec.timeout,
            max_connections=spec.max_connections,
            signer=spec.signer,
            token=token_source(spec.credential, ssl_context=spec.ssl_context, timeout=spec.timeout),
        )

    @property
    def partner_id(self) -> str:
        return self._partner_id

    @property
    def base_url(self) -> str:
        return self._base

    async def open(
        self, device_id: str, *, request_id: str, traceparent: str | None = None
    ) -> OpenResult:
        headers = {"Idempotency-Key": request_id}
        if traceparent:
            headers["traceparent"] = traceparent
        body = await self._request("POST", f"/devices/{quote(device_id, safe='')}/open", headers)
        try:
            return OpenResult(
                str(body["device_id"]),
                str(body["command_id"]),
                str(body["status"]),
                _when(body["confirmed_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PartnerUnavailableError(f"unexpected answer to open: {exc!r}") from exc

    async def device_status(self, device_id: str) -> DeviceStatus:
        body = await self._request("GET", f"/devices/{quote(device_id, safe='')}")
        try:
            return DeviceStatus(
                str(body["device_id"]),
                bool(body["online"]),
                str(body["state"]),
                _when(body.get("last_seen")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PartnerUnavailableError(f"unexpected device status: {exc!r}") from exc

    async def list_devices(self) -> list[DeviceInfo]:
        body = await self._request("GET", "/devices")
        try:
            return [
                DeviceInfo(str(d["device_id"]), d["kind"], str(d["name"])) for d in body["devices"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise PartnerUnavailableError(f"unexpected device list: {exc!r}") from exc

    async def close(self) -> None:
        await self._http.close()

    # -- internals -----------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        url = URL(self._base + API_PREFIX + path, encoded=True)
        status, body = await self._http.send(method, url, headers)
        if 200 <= status < 300 and isinstance(body, dict):
            return body
        if 400 <= status < 500 and status not in UNAVAILABLE_4XX and isinstance(body, dict):
            code = body.get("error")
            if isinstance(code, str) and code:
                raise PartnerRefusedError(code, str(body.get("message") or ""))
        detail = body.get("error") if isinstance(body, dict) else "no JSON body"
        raise PartnerUnavailableError(f"{self._partner_id}: HTTP {status} ({detail})")
