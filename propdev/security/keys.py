"""The JWT signing keys: RSA 2048 PEM files under ``<pki dir>/jwt``, rotated with overlap.

Each file ``key-NNNNNN.pem`` holds one private key (mode 0600). The highest number signs;
every key is published in the JWKS and accepted by verifiers, so a new key can be added,
published, and only later retire the old one (after the longest token lifetime). Nodes of one
cluster share the directory; ``refresh()`` re-reads it (verifiers call it, throttled, when
they meet an unknown ``kid``), and each node's ``watch()`` re-reads it within seconds of a
change and retires, after ``OVERLAP``, a key that no longer signs.

``run.py keys rotate-signing`` adds a key (``rotate()``): from then on it signs, on each node
once it has seen the file; a key's retirement time is its successor's file time plus
``OVERLAP`` -- the longest access/ID token lifetime, the clock leeway and slack for nodes
that have not yet seen the new key -- so every token it signed has expired when it leaves
the JWKS.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from propdev.config.settings import MAX_ACCESS_TOKEN_TTL
from propdev.secret_file import create_once
from propdev.security.errors import KeyStoreError

log = structlog.get_logger()

ALGORITHM = "PS256"
KEY_SIZE = 2048
_FILE = re.compile(r"^key-(\d{6})\.pem$")
OVERLAP = MAX_ACCESS_TOKEN_TTL + 60.0
"""Seconds a key stays published after its successor was made: the longest token lifetime
(``PROPDEV_ACCESS_TOKEN_TTL`` at most) plus a minute for leeway and nodes' pick-up."""
WATCH_INTERVAL = 2.0


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The public RSA members of a JWK (``kty``, ``n``, ``e``)."""
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}


def jwk_thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 SHA-256 thumbprint: the ``kid`` of a key."""
    members = public_jwk(public_key)
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode("ascii")
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


@dataclasses.dataclass(frozen=True, slots=True)
class SigningKey:
    """One parsed key pair and its ``kid``."""

    kid: str
    number: int
    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey
    created_at: float = 0.0  # the file's time: when it was made (and began to sign)

    def jwk(self) -> dict[str, str]:
        return {**public_jwk(self.public_key), "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


@dataclasses.dataclass(frozen=True, slots=True)
class _Snapshot:
    signing: SigningKey
    by_kid: dict[str, SigningKey]
    jwks: dict[str, Any]


class SigningKeys:
    """The key files of one directory, parsed once; reads are lock-free snapshots."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._loaded: tuple[tuple[str, int], ...] = ()  # stamp() when last read

    @classmethod
    def load_or_create(cls, directory: Path) -> SigningKeys:
        """Read the keys of ``directory``; create the directory and a first key if none."""
        keys = cls(directory)
        with keys._lock:
            keys._load(create=True)
        return keys

    # -- reads -------------------------------------------------------------------------

    @property
    def signing_key(self) -> SigningKey:
        """The newest key: the one that signs."""
        return self._current().signing

    def get(self, kid: str) -> SigningKey | None:
        """The key with this ``kid``, or None."""
        return self._current().by_kid.get(kid)

    def kids(self) -> list[str]:
        return list(self._current().by_kid)

    def jwks(self) -> dict[str, Any]:
        """``{"keys": [...]}`` with every public key, newest first."""
        return self._current().jwks

    # -- changes -----------------------------------------------------------------------

    def refresh(self) -> bool:
        """Re-read the directory; return True when the set of keys changed."""
        with self._lock:
            before = set(self._current().by_kid)
            self._load(create=False)
            return set(self._current().by_kid) != before

    def rotate(self) -> SigningKey:
        """Add a new key, which becomes the signing key; the older ones stay published."""
        with self._lock:
            self._create_key(self._current().signing.number + 1)
            self._load(create=False)
            return self._current().signing

    def retire(self, kid: str) -> None:
        """Delete a key that no longer signs (after the longest token lifetime has passed)."""
        with self._lock:
            key = self._current().by_kid.get(kid)
            if key is None:
                return
            if key.kid == self._current().signing.kid:
                raise KeyStoreError("the signing key cannot be retired; rotate first")
            (self.directory / f"key-{key.number:06d}.pem").unlink(missing_ok=True)
            self._load(create=False)

    def retire_expired(self, now: float, overlap: float = OVERLAP) -> list[str]:
        """Retire every key whose successor was made ``overlap`` seconds or more before
        ``now``; return their ``kid``s, oldest first."""
        with self._lock:
            keys = sorted(self._current().by_kid.values(), key=lambda k: k.number)
            due = [old for old, new in itertools.pairwise(keys) if now - new.created_at >= overlap]
            return self._delete(due)

    def retire_all_but_signing(self) -> list[str]:
        """Retire every key but the signing one at once (a compromised key): tokens they
        signed stop verifying."""
        with self._lock:
            current = self._current()
            return self._delete([k for k in current.by_kid.values() if k is not current.signing])

    def retirement_times(self, overlap: float = OVERLAP) -> dict[str, float]:
        """When each key that no longer signs leaves the JWKS (epoch seconds)."""
        keys = sorted(self._current().by_kid.values(), key=lambda k: k.number)
        return {old.kid: new.created_at + overlap for old, new in itertools.pairwise(keys)}

    def stamp(self) -> tuple[tuple[str, int], ...]:
        """The key files' names and times: what ``watch`` compares to see a change."""
        try:
            return tuple(
                sorted(
                    (p.name, p.stat().st_mtime_ns)
                    for p in self.directory.iterdir()
                    if _FILE.match(p.name)
                )
            )
        except OSError:
            return ()

    async def watch(
        self,
        interval: float = WATCH_INTERVAL,
        *,
        overlap: float = OVERLAP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Until cancelled: re-read the directory when its key files change (a key rotated by
        ``run.py keys rotate-signing`` or another node signs here within ``interval``), and
        retire the keys whose overlap has passed."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self.stamp() != self._loaded and self.refresh():
                    log.info("signing_keys_reloaded", signing=self.signing_key.kid)
                retired = self.retire_expired(clock(), overlap)
                if retired:
                    log.info("signing_keys_retired", kids=retired)
            except KeyStoreError as exc:  # an unreadable file: keep the keys we have
                log.error("signing_keys_reload_failed", error=str(exc))

    # -- internals ---------------------------------------------------------------------

    def _delete(self, keys: list[SigningKey]) -> list[str]:
        for key in sorted(keys, key=lambda k: k.number):
            (self.directory / f"key-{key.number:06d}.pem").unlink(missing_ok=True)
        if keys:
            self._load(create=False)
        return [k.kid for k in sorted(keys, key=lambda k: k.number)]

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            raise KeyStoreError(f"signing keys of {self.directory} not loaded")
        return snapshot

    def _load(self, *, create: bool) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._loaded = self.stamp()  # before reading: a change meanwhile is seen again
            keys = self._read_all()
            if not keys and create:
                self._create_key(1)
                keys = self._read_all()
        except OSError as exc:
            raise KeyStoreError(f"signing keys in {self.directory}: {exc}") from exc
        if not keys:
            raise KeyStoreError(f"no signing key in {self.directory}")
        keys.sort(key=lambda k: k.number, reverse=True)
        self._snapshot = _Snapshot(
            signing=keys[0],
            by_kid={k.kid: k for k in keys},
            jwks={"keys": [k.jwk() for k in keys]},
        )

    def _read_all(self) -> list[SigningKey]:
        keys = []
        for path in self.directory.iterdir():
            match = _FILE.match(path.name)
            if match is None:
                continue
            try:
                private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except ValueError as exc:
                raise KeyStoreError(f"{path}: not a PEM private key") from exc
            if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < KEY_SIZE:
                raise KeyStoreError(f"{path}: expected an RSA key of at least {KEY_SIZE} bits")
            public = private.public_key()
            made = path.stat().st_mtime
            keys.append(SigningKey(jwk_thumbprint(public), int(match[1]), private, public, made))
        return keys

    def _create_key(self, number: int) -> None:
        """Write a new key atomically: a temporary file, then a hard link that fails if taken."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # a key another node wrote first under this number is kept, and used
        create_once(self.directory / f"key-{number:06d}.pem", pem)
