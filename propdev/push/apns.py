"""APNs provider API: token-based authentication over HTTP/2 (httpx with h2).

The provider JWT (ES256, ``kid`` = key id, ``iss`` = team id, ``iat``) is signed once and
reused for ``JWT_TTL`` (Apple: renew at most every 20 min, at least every 60); a 403
``ExpiredProviderToken``/``InvalidProviderToken`` signs a new one and the push is retried.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from propdev.push.errors import PushConfigError
from propdev.push.provider import SendResult, Verdict, retry_after
from propdev.push.texts import PushMessage

DEFAULT_URL = "https://api.push.apple.com"
JWT_TTL = 50 * 60.0  # < 60 min (ExpiredProviderToken), > 20 min (TooManyProviderTokenUpdates)
EXPIRATION = 3600  # seconds APNs keeps an undelivered push
_GONE = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered", "ExpiredToken"})
_NEW_JWT = frozenset({"ExpiredProviderToken", "InvalidProviderToken", "MissingProviderToken"})


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PushConfigError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise PushConfigError(f"{path}: an APNs key is a P-256 (ES256) key")
    return key


class ApnsProvider:
    platform = "apns"

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        key_id: str,
        team_id: str,
        topic: str,
        base_url: str = DEFAULT_URL,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.key_id = key_id
        self.team_id = team_id
        self.topic = topic
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self._jwt: tuple[str, float] | None = None  # (token, signed at)
        self._client = httpx.AsyncClient(
            http2=True, verify=ssl_context or True, timeout=httpx.Timeout(10.0)
        )
        self.signed = 0  # provider JWTs signed (tests, diagnostics)

    async def close(self) -> None:
        await self._client.aclose()

    def provider_token(self) -> str:
        now = self.clock()
        if self._jwt is None or now - self._jwt[1] >= JWT_TTL:
            token = jwt.encode(
                {"iss": self.team_id, "iat": int(now)},
                self.key,
                "ES256",
                headers={"kid": self.key_id},
            )
            self._jwt = (token, now)
            self.signed += 1
        return self._jwt[0]

    async def send(self, token: str, message: PushMessage) -> SendResult:
        payload = {
            "aps": {"alert": {"title": message.title, "body": message.body}, "sound": "default"},
            **message.data,
        }
        headers = {
            "authorization": f"bearer {self.provider_token()}",
            "apns-topic": self.topic,
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-expiration": str(int(self.clock()) + EXPIRATION),
            "apns-collapse-id": message.collapse_id,
        }
        resp = await self._client.post(
            f"{self.base_url}/3/device/{token}",
            content=json.dumps(payload, separators=(",", ":")).encode(),
            headers=headers,
        )
        status = resp.status_code
        if status == 200:
            return SendResult(Verdict.DELIVERED, status)
        try:
            reason = str(resp.json().get("reason", ""))
        except ValueError:
            reason = ""
        if status == 410 or reason in _GONE:
            return SendResult(Verdict.GONE, status, reason)
        if status == 403 and reason in _NEW_JWT:
            self._jwt = None
            return SendResult(Verdict.RETRY, status, reason)
        if status in (429, 500, 503):
            return SendResult(
                Verdict.RETRY, status, reason, retry_after(resp.headers.get("retry-after"))
            )
        return SendResult(Verdict.REJECTED, status, reason)


__all__ = ("DEFAULT_URL", "JWT_TTL", "ApnsProvider", "load_key")
