"""Web Push (RFC 8030) with VAPID (RFC 8292, py-vapid) and aes128gcm (RFC 8291, http_ece)."""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from propdev.push.errors import PushConfigError
from propdev.push.provider import LazySession, SendResult, Verdict, retry_after
from propdev.push.texts import PushMessage
from propdev.push.tokens import b64url_decode

TTL = 3600  # seconds the push service keeps an undelivered message
VAPID_TTL = 12 * 3600  # exp of the VAPID JWT (≤ 24 h)
SUBJECT = "mailto:push@propdev.invalid"


def load_vapid(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PushConfigError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise PushConfigError(f"{path}: a VAPID key is a P-256 key")
    return key


def application_server_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The public key browsers subscribe with (``applicationServerKey``)."""
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def encrypt(plaintext: bytes, p256dh: bytes, auth: bytes) -> bytes:
    """One aes128gcm record for the subscription's keys, from a fresh ephemeral key."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        plaintext,
        salt=os.urandom(16),
        private_key=ephemeral,
        dh=p256dh,
        auth_secret=auth,
        version="aes128gcm",
    )
    return body


class WebPushProvider:
    platform = "webpush"

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        subject: str = SUBJECT,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vapid = Vapid02(key)
        self.subject = subject
        self.clock = clock
        self._http = LazySession(ssl_context)

    async def close(self) -> None:
        await self._http.close()

    def authorization(self, endpoint: str) -> str:
        parts = urllib.parse.urlsplit(endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(self.clock()) + VAPID_TTL,
            "sub": self.subject,
        }
        return str(self.vapid.sign(claims)["Authorization"])

    async def send(self, token: str, message: PushMessage) -> SendResult:
        subscription = json.loads(token)
        endpoint = str(subscription["endpoint"])
        keys = subscription["keys"]
        plaintext = json.dumps(
            {"title": message.title, "body": message.body, "data": message.data},
            ensure_ascii=False,
        ).encode()
        body = encrypt(plaintext, b64url_decode(keys["p256dh"]), b64url_decode(keys["auth"]))
        headers = {
            "Authorization": self.authorization(endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(TTL),
            "Urgency": "high",
            "Topic": message.collapse_id,
        }
        async with self._http().post(endpoint, data=body, headers=headers) as resp:
            status = resp.status
            wait = retry_after(resp.headers.get("Retry-After"))
            await resp.read()
        if 200 <= status < 300:
            return SendResult(Verdict.DELIVERED, status)
        if status in (404, 410):
            return SendResult(Verdict.GONE, status, "expired")
        if status == 429 or status >= 500:
            return SendResult(Verdict.RETRY, status, "", wait)
        return SendResult(Verdict.REJECTED, status, "")


__all__ = ("WebPushProvider", "application_server_key", "encrypt", "load_vapid")
