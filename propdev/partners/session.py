"""One keep-alive HTTPS session to a partner's API, for the adapters that speak HTTP.

``PartnerSession`` creates its ``aiohttp.ClientSession`` on first use (the partner's
certificate checked against the ``ssl_context`` given; ``headers`` sent with every request)
and closes it in ``close()``. ``send`` signs the request with the ``signer`` when there is one
(RFC 9421, ``httpsig``) and answers the status and the JSON body (None when there is none or it
is not JSON); a connection or TLS failure becomes ``PartnerUnavailableError``, no answer in
``timeout`` seconds ``PartnerTimeoutError``. With a ``bearer`` token source (OAuth client
credentials) each request carries ``Authorization: Bearer`` with its current token. What a
status means is the adapter's to say.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from yarl import URL

from propdev.partners.errors import PartnerTimeoutError, PartnerUnavailableError
from propdev.partners.httpsig import RequestSigner


class PartnerSession:
    """HTTPS+JSON to one partner; ``label`` names it in error messages."""

    def __init__(
        self,
        label: str,
        *,
        ssl_context: ssl.SSLContext,
        timeout: float,
        headers: Mapping[str, str],
        max_connections: int = 64,
        signer: RequestSigner | None = None,
        bearer: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self._label = label
        self._bearer = bearer
        self._ssl = ssl_context
        self._timeout = timeout
        self._headers = dict(headers)
        self._max_connections = max_connections
        self._signer = signer
        self._session: aiohttp.ClientSession | None = None

    async def send(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """Send the request; answer (status, the JSON body or None)."""
        sent = dict(headers or {})
        if self._bearer is not None:  # an OAuth access token, renewed by its source
            sent["Authorization"] = f"Bearer {await self._bearer()}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if self._signer is not None:
            self._signer.sign(method, str(url), sent, data)
        try:
            async with self._client().request(method, url, headers=sent, data=data) as resp:
                raw, status = await resp.read(), resp.status
        except TimeoutError as exc:  # before ClientError: ServerTimeoutError is both
            raise PartnerTimeoutError(f"{self._label}: no answer within {self._timeout}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise PartnerUnavailableError(f"{self._label}: {exc}") from exc
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers=self._headers,
                raise_for_status=False,
            )
        return self._session
