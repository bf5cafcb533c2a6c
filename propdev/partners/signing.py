"""Signed partner callbacks, Standard Webhooks style: an HMAC-SHA256 over id, time and body.

Headers: ``webhook-id`` (the delivery's id), ``webhook-timestamp`` (epoch seconds) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``, several
separated by spaces while a secret rotates). The secret of each partner is shared through the
data dir, ``<data dir>/partners/<partner>/webhook-secret`` (mode 0600, made on first use), like
the vendor API key. A signature older or newer than ``TOLERANCE`` seconds is refused (replay).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from propdev.partners.apikey import api_key_path, vendor_api_key

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
TOLERANCE = 300.0
SECRET_NAME = "webhook-secret"


def webhook_secret(data_dir: Path, partner_id: str) -> str:
    """The callback signing secret of ``partner_id`` (created, once, if the data dir has none)."""
    return vendor_api_key(data_dir, partner_id, name=SECRET_NAME)


def webhook_secret_path(data_dir: Path, partner_id: str) -> Path:
    return api_key_path(data_dir, partner_id).with_name(SECRET_NAME)


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(secret: str, message_id: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The three headers for ``body``."""
    timestamp = int(time.time() if now is None else now)
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, message_id, timestamp, body),
    }


def verify(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    clock: Callable[[], float] = time.time,
    tolerance: float = TOLERANCE,
) -> str | None:
    """None when ``body`` is signed with ``secret`` (or any one of several: the current and the
    previous while a rotation's overlap lasts) within ``tolerance``; else what is wrong. The
    header may carry several ``v1,`` signatures (a sender mid-rotation): one valid is enough."""
    message_id = headers.get(ID_HEADER, "")
    raw_time = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not message_id or not raw_time or not given:
        return "unsigned"
    try:
        timestamp = int(raw_time)
    except ValueError:
        return "bad timestamp"
    if abs(clock() - timestamp) > tolerance:
        return "stale timestamp"
    secrets = [secret] if isinstance(secret, str) else list(secret)
    offered = [s.encode() for s in given.split()]
    for candidate in secrets:
        expected = signature(candidate, message_id, timestamp, body).encode()
        if any(hmac.compare_digest(expected, s) for s in offered):
            return None
    return "bad signature"


sign_callback = sign
verify_callback = verify
