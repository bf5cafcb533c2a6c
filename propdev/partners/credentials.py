"""What our node presents to a vendor's API: a static API key, or an OAuth 2.0 access token
it gets with the client credentials grant (RFC 6749 §4.4) and keeps until shortly before it
expires.

``auth_header`` turns a credential into the ``(header, value)`` an adapter sends: each adapter
says where an API key goes (``X-Api-Key`` for the simulator's protocol, ``Authorization:
Bearer`` for acme); a token always travels as ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

import aiohttp

from propdev.partners.errors import PartnerUnavailableError

TOKEN_MARGIN = 30.0  # seconds before its expiry a token is renewed


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A static key the vendor issued us."""

    key: str


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """Client credentials at the vendor's token endpoint."""

    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None


Credential = ApiKey | OAuthClient


class ClientCredentialsToken:
    """An access token from ``client.token_url``, fetched on first use and renewed before it
    expires; a failure to get one is ``PartnerUnavailableError``."""

    def __init__(self, client: OAuthClient, *, ssl_context: ssl.SSLContext, timeout: float) -> None:
        self._client = client
        self._ssl = ssl_context
        self._timeout = timeout
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> str:
        async with self._lock:
            now = time.monotonic()
            if self._token is not None and self._token[1] > now:
                return self._token[0]
            form = {"grant_type": "client_credentials"}
            if self._client.scope:
                form["scope"] = self._client.scope
            auth = aiohttp.BasicAuth(self._client.client_id, self._client.client_secret)
            try:
                async with (
                    aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(ssl=self._ssl),
                        timeout=aiohttp.ClientTimeout(total=self._timeout),
                    ) as http,
                    http.post(self._client.token_url, data=form, auth=auth) as resp,
                ):
                    answer = await resp.json(content_type=None)
                    status = resp.status
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                raise PartnerUnavailableError(f"token endpoint: {exc!r}") from exc
            if status != 200 or not isinstance(answer, dict) or "access_token" not in answer:
                raise PartnerUnavailableError(f"token endpoint: HTTP {status}")
            lifetime = float(answer.get("expires_in", 300))
            self._token = (str(answer["access_token"]), now + max(1.0, lifetime - TOKEN_MARGIN))
            return self._token[0]


def api_key_of(credential: Credential | None) -> str | None:
    return credential.key if isinstance(credential, ApiKey) else None


def token_source(
    credential: Credential | None, *, ssl_context: ssl.SSLContext, timeout: float
) -> ClientCredentialsToken | None:
    """The token source of OAuth client credentials (None for an API key or none)."""
    if not isinstance(credential, OAuthClient):
        return None
    return ClientCredentialsToken(credential, ssl_context=ssl_context, timeout=timeout)
