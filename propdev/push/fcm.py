"""FCM HTTP v1: a Google service account's OAuth 2.0 JWT-bearer grant, then ``messages:send``.

The access token is fetched from the key file's ``token_uri`` (RFC 7523: an RS256 assertion
with ``kid`` = ``private_key_id``, ``iss`` = ``client_email``, ``aud`` = ``token_uri``) and kept
until ``REFRESH_MARGIN`` seconds before it expires; a 401 drops it and the send is tried once
more with a new one.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from propdev.push.errors import PushConfigError, PushUnavailableError
from propdev.push.provider import LazySession, SendResult, Verdict, retry_after
from propdev.push.texts import PushMessage

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_URL = "https://fcm.googleapis.com"
REFRESH_MARGIN = 225.0  # google-auth's: 3 min 45 s before expiry
ASSERTION_TTL = 3600
_GONE_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    project_id: str
    client_email: str
    private_key_id: str
    private_key: rsa.RSAPrivateKey
    token_uri: str

    @classmethod
    def from_file(cls, path: Path) -> ServiceAccount:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            key = serialization.load_pem_private_key(raw["private_key"].encode(), password=None)
            fields = {k: str(raw[k]) for k in ("project_id", "client_email", "private_key_id")}
            token_uri = str(raw["token_uri"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PushConfigError(f"{path}: not a service-account key file ({exc})") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise PushConfigError(f"{path}: the private key is not RSA")
        if not token_uri.startswith("https://"):
            raise PushConfigError(f"{path}: token_uri must be https")
        return cls(private_key=key, token_uri=token_uri, **fields)


def _fcm_error(body: Any) -> tuple[str, str]:
    """(FCM error code, message) of an error body; the code from the FcmError detail."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code = str(error.get("status", ""))
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("FcmError"):
            code = str(detail.get("errorCode", code))
    return code, str(error.get("message", ""))


class FcmProvider:
    platform = "fcm"

    def __init__(
        self,
        account: ServiceAccount,
        *,
        base_url: str = DEFAULT_URL,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.url = f"{base_url.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
        self.clock = clock
        self._token: tuple[str, float] | None = None  # (access token, expires at)
        self._lock = asyncio.Lock()
        self._http = LazySession(ssl_context)
        self.grants = 0  # access tokens fetched (tests, diagnostics)

    async def close(self) -> None:
        await self._http.close()

    def assertion(self) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.account.token_uri,
            "iat": now,
            "exp": now + ASSERTION_TTL,
        }
        headers = {"kid": self.account.private_key_id}
        return jwt.encode(claims, self.account.private_key, "RS256", headers=headers)

    async def access_token(self) -> str:
        async with self._lock:
            now = self.clock()
            if self._token is not None and now < self._token[1] - REFRESH_MARGIN:
                return self._token[0]
            form = {"grant_type": GRANT, "assertion": self.assertion()}
            async with self._http().post(self.account.token_uri, data=form) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or not isinstance(body, dict):
                    raise PushUnavailableError(f"FCM token endpoint answered {resp.status}")
            self.grants += 1
            self._token = (str(body["access_token"]), now + float(body.get("expires_in", 3600)))
            return self._token[0]

    async def send(self, token: str, message: PushMessage) -> SendResult:
        payload = {
            "message": {
                "token": token,
                "notification": {"title": message.title, "body": message.body},
                "data": message.data,
                "android": {"priority": "high", "collapse_key": message.collapse_id},
                "apns": {"headers": {"apns-collapse-id": message.collapse_id}},
            }
        }
        result = await self._post(payload)
        if result.status == 401 and not result.reason:  # our access token: a new one, once
            self._token = None
            result = await self._post(payload)
        return result

    async def _post(self, payload: dict[str, Any]) -> SendResult:
        headers = {"Authorization": f"Bearer {await self.access_token()}"}
        async with self._http().post(self.url, json=payload, headers=headers) as resp:
            status = resp.status
            if status == 200:
                return SendResult(Verdict.DELIVERED, status)
            try:
                body = await resp.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                body = None
            wait = retry_after(resp.headers.get("Retry-After"))
        code, text = _fcm_error(body)
        if status == 404 or code in _GONE_CODES:
            return SendResult(Verdict.GONE, status, code or "NOT_FOUND")
        if status == 400:
            about_token = "registration token" in text.lower()
            return SendResult(Verdict.GONE if about_token else Verdict.REJECTED, status, code)
        if status == 401:
            return SendResult(
                Verdict.RETRY, status, "" if code in ("", "UNAUTHENTICATED") else code
            )
        return SendResult(Verdict.RETRY, status, code, wait)


__all__ = ("DEFAULT_URL", "SCOPE", "FcmProvider", "ServiceAccount")
