"""The one interface of FCM, APNs and Web Push senders, and what a send comes to."""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from propdev.push.texts import PushMessage


class Verdict(enum.Enum):
    """What the provider's answer means for the delivery and its token."""

    DELIVERED = "delivered"  # accepted by the provider
    GONE = "gone"  # the token is dead (FCM UNREGISTERED/404, APNs 410, Web Push 404/410)
    RETRY = "retry"  # transient (5xx, 429, a refused JWT): later, with back-off
    REJECTED = "rejected"  # our request is wrong for this token: not retried, token kept


@dataclass(frozen=True, slots=True)
class SendResult:
    verdict: Verdict
    status: int = 0  # the provider's HTTP status (0: none)
    reason: str = ""  # the provider's reason code, never the token
    retry_after: float | None = None


class PushProvider(Protocol):
    """Sends one push to one device. Transport failures raise (``OSError``, a client error):
    the sender retries and counts them in the provider's breaker; answers are ``SendResult``."""

    @property
    def platform(self) -> str: ...

    async def send(self, token: str, message: PushMessage) -> SendResult: ...

    async def close(self) -> None: ...


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (dates are not honoured: back-off applies)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


__all__ = ("PushProvider", "SendResult", "Verdict", "retry_after")


TIMEOUT = aiohttp.ClientTimeout(total=10)


class LazySession:
    """A provider's one HTTPS session (HTTP/1.1), made on first use and closed by ``close``;
    ``ssl_context`` None trusts the system store."""

    def __init__(self, ssl_context: ssl.SSLContext | None) -> None:
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self.ssl_context or True)
            self._session = aiohttp.ClientSession(connector=connector, timeout=TIMEOUT)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
