"""Residents' push tokens: the shape of each platform's device address, and their store.

A token is a device identifier, not a credential: it is useless without our provider keys
(the service account, the APNs key, the VAPID key), so it is stored as it is, never logged and
never shown whole (``hint``). It is forgotten on logout (the login it came with, ``sid``), on
move-out, on erasure, and when its provider reports it gone.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from propdev.ids import new_uuid
from propdev.push.errors import InvalidPushTokenError, PushTokenNotFoundError

if TYPE_CHECKING:
    from propdev.storage import Database, UnitConnection

PLATFORMS = ("fcm", "apns", "webpush")
LOCALES = ("ru", "en")
MAX_TOKENS_PER_USER = 20  # past it, the oldest is forgotten (a phone replaced many times)

_FCM = re.compile(r"[A-Za-z0-9_:\-]{32,1024}")
_APNS = re.compile(r"[0-9a-fA-F]{64}")
_B64URL = re.compile(r"[A-Za-z0-9_\-]+={0,2}")
MAX_ENDPOINT = 2048


@dataclass(frozen=True, slots=True)
class PushToken:
    id: str
    user_id: str
    platform: str
    token: str  # FCM/APNs: the token; webpush: the subscription as canonical JSON
    created_at: float

    @property
    def hint(self) -> str:
        """What the owner sees of it: a platform's endpoint host or the token's last 6."""
        if self.platform == "webpush":
            return str(urllib.parse.urlsplit(json.loads(self.token)["endpoint"]).hostname)
        return "…" + self.token[-6:]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "platform": self.platform,
            "hint": self.hint,
            "created_at": self.created_at,
        }


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _key(keys: Mapping[str, Any], name: str, size: int) -> bytes:
    raw = keys.get(name)
    field = f"subscription.keys.{name}"
    if not isinstance(raw, str) or not _B64URL.fullmatch(raw):
        raise InvalidPushTokenError(field, "expected base64url text")
    try:
        decoded = b64url_decode(raw.rstrip("="))
    except (binascii.Error, ValueError):
        raise InvalidPushTokenError(field, "expected base64url text") from None
    if len(decoded) != size:
        raise InvalidPushTokenError(field, f"expected {size} bytes, got {len(decoded)}")
    return decoded


def _subscription(raw: object) -> str:
    if not isinstance(raw, dict):
        raise InvalidPushTokenError("subscription", "expected an object {endpoint, keys}")
    endpoint = raw.get("endpoint")
    if not isinstance(endpoint, str) or len(endpoint) > MAX_ENDPOINT:
        raise InvalidPushTokenError("subscription.endpoint", "expected an https URL")
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise InvalidPushTokenError("subscription.endpoint", "expected an https URL")
    keys = raw.get("keys")
    if not isinstance(keys, dict):
        raise InvalidPushTokenError("subscription.keys", "expected an object {p256dh, auth}")
    p256dh = _key(keys, "p256dh", 65)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise InvalidPushTokenError(
            "subscription.keys.p256dh", "not an uncompressed P-256 public key"
        ) from None
    auth = _key(keys, "auth", 16)
    canonical = {
        "endpoint": endpoint,
        "keys": {
            "p256dh": base64.urlsafe_b64encode(p256dh).decode().rstrip("="),
            "auth": base64.urlsafe_b64encode(auth).decode().rstrip("="),
        },
    }
    return json.dumps(canonical, separators=(",", ":"), sort_keys=True)


def parse_registration(body: object) -> tuple[str, str, str | None]:
    """(platform, token, locale or None) of a registration body, or ``InvalidPushTokenError``."""
    if not isinstance(body, dict):
        raise InvalidPushTokenError("body", "expected a JSON object")
    allowed = {"platform", "token", "subscription", "locale"}
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidPushTokenError(extra[0], "unknown field")
    platform = body.get("platform")
    if platform not in PLATFORMS:
        raise InvalidPushTokenError("platform", f"expected one of {', '.join(PLATFORMS)}")
    locale = body.get("locale")
    if locale is not None and locale not in LOCALES:
        raise InvalidPushTokenError("locale", f"expected one of {', '.join(LOCALES)}")
    if platform == "webpush":
        if "token" in body:
            raise InvalidPushTokenError("token", "webpush takes a subscription, not a token")
        return platform, _subscription(body.get("subscription")), locale
    if "subscription" in body:
        raise InvalidPushTokenError("subscription", f"{platform} takes a token")
    token = body.get("token")
    if platform == "fcm":
        if not isinstance(token, str) or not _FCM.fullmatch(token):
            raise InvalidPushTokenError(
                "token", "an FCM registration token: 32 to 1024 of A-Z a-z 0-9 _ : -"
            )
        return platform, token, locale
    if not isinstance(token, str) or not _APNS.fullmatch(token):
        raise InvalidPushTokenError("token", "an APNs device token: 64 hexadecimal digits")
    return platform, token.lower(), locale


def _token(row: Mapping[str, Any]) -> PushToken:
    return PushToken(
        str(row["id"]),
        str(row["user_id"]),
        str(row["platform"]),
        str(row["token"]),
        float(row["created_at"]),
    )


class PushTokens:
    """The push tokens of every resident."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def register(self, user_id: str, body: object, *, sid: str | None = None) -> PushToken:
        """Store a token (validated) for ``user_id``; the same device again keeps its id. A
        device that another account registered before is now this account's."""
        platform, token, locale = parse_registration(body)
        now = self.clock()

        def put(conn: UnitConnection) -> PushToken:
            found = conn.run(
                "SELECT * FROM push_tokens WHERE platform = :p AND token = :t", p=platform, t=token
            )
            if found and found[0]["user_id"] == user_id:
                conn.run("UPDATE push_tokens SET sid = :s WHERE id = :i", s=sid, i=found[0]["id"])
                kept = _token(found[0])
            else:
                if found:  # the device changed hands: the previous account loses it
                    sync_forget(conn, "id = :v", found[0]["id"])
                kept = PushToken(str(new_uuid()), user_id, platform, token, now)
                conn.run(
                    "INSERT INTO push_tokens (id, user_id, platform, token, sid, created_at) "
                    "VALUES (:i, :u, :p, :t, :s, :c)",
                    i=kept.id,
                    u=user_id,
                    p=platform,
                    t=token,
                    s=sid,
                    c=now,
                )
                mine = conn.run(
                    "SELECT id FROM push_tokens WHERE user_id = :u ORDER BY created_at DESC, id",
                    u=user_id,
                )
                for old in mine[MAX_TOKENS_PER_USER:]:
                    sync_forget(conn, "id = :v", old["id"])
            if locale is not None:
                conn.run("UPDATE users SET locale = :l WHERE id = :u", l=locale, u=user_id)
            return kept

        return await self.db.unit(put)

    async def of(self, user_id: str) -> list[PushToken]:
        rows = await self.db.fetch_all(
            "SELECT * FROM push_tokens WHERE user_id = :u ORDER BY created_at, id", u=user_id
        )
        return [_token(r) for r in rows]

    async def remove(self, user_id: str, token_id: str) -> None:
        """Forget one of ``user_id``'s tokens; ``PushTokenNotFoundError`` for anyone else's."""

        def drop(conn: UnitConnection) -> int:
            found = conn.run(
                "SELECT id FROM push_tokens WHERE id = :i AND user_id = :u", i=token_id, u=user_id
            )
            return sync_forget(conn, "id = :v", token_id) if found else 0

        if not await self.db.unit(drop):
            raise PushTokenNotFoundError(token_id)

    async def forget_login(self, sid: str) -> int:
        """Logout: forget the tokens registered under the login (refresh family) ``sid``."""
        return await self.db.unit(lambda conn: sync_forget(conn, "sid = :v", sid))

    async def forget_user(self, user_id: str) -> int:
        return await self.db.unit(lambda conn: sync_forget(conn, "user_id = :v", user_id))


def sync_forget(conn: UnitConnection, where: str, value: str) -> int:
    """Delete the tokens ``WHERE <where>`` (``:v``) and their pending pushes; how many."""
    gone = conn.run(f"DELETE FROM push_tokens WHERE {where} RETURNING id", v=value)
    for row in gone:
        conn.run("DELETE FROM push_outbox WHERE token_id = :t", t=row["id"])
    return len(gone)


__all__ = (
    "LOCALES",
    "PLATFORMS",
    "PushToken",
    "PushTokens",
    "b64url_decode",
    "parse_registration",
    "sync_forget",
)
