"""Login-form tickets: an HMAC over the authorization request and the time it was shown.

The form carries the request parameters as hidden fields; the ticket proves that this server
rendered the form for exactly those parameters, less than ``ttl`` seconds ago. It blocks
forged or edited form posts (a changed ``redirect_uri``, ``code_challenge``…) without any
server-side session. The secret is a file shared by the nodes of a cluster.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from propdev.secret_file import create_once
from propdev.security.errors import KeyStoreError

TICKET_TTL = 600.0


def load_or_create_secret(path: Path) -> bytes:
    """Read a 32-byte secret from ``path``, creating it (mode 0600) on first use."""
    try:
        create_once(path, secrets.token_bytes(32), dir_mode=0o700)
        secret = path.read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"form secret {path}: {exc}") from exc
    if len(secret) < 32:
        raise KeyStoreError(f"form secret {path}: too short")
    return secret


class FormTickets:
    """Issues and checks tickets bound to a set of request parameters."""

    def __init__(
        self, secret: bytes, *, ttl: float = TICKET_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self.ttl = ttl
        self._clock = clock

    def issue(self, params: Mapping[str, str]) -> str:
        issued = int(self._clock())
        return f"{issued}.{self._mac(issued, params)}"

    def check(self, ticket: str, params: Mapping[str, str]) -> bool:
        issued_text, _, mac = ticket.partition(".")
        if not issued_text.isdigit() or not mac:
            return False
        issued = int(issued_text)
        now = self._clock()
        if not issued - 5 <= now <= issued + self.ttl:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(issued, params).encode())

    def _mac(self, issued: int, params: Mapping[str, str]) -> str:
        message = json.dumps([issued, sorted(params.items())], separators=(",", ":"))
        digest = hmac.new(self._secret, message.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
