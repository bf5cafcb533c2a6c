"""Envelope encryption of personal data and account secrets (AES-256-GCM).

A **master key** (KEK, 32 bytes) comes from configuration -- ``PROPDEV_MASTER_KEY_FILE`` or
``PROPDEV_MASTER_KEY`` (base64) or, in the embedded default, ``<data dir>/keys/master.key``
(0600, generated on first start) -- and never from the database. It wraps **data keys**
(DEKs), which live in the ``data_keys`` table wrapped, each with a key id (``k0001``…). The
highest-numbered data key encrypts; every key decrypts, so ``run.py keys rotate`` adds a key
and re-encrypts rows, and rows not yet re-encrypted still decrypt.

A sealed value is the text ``v1:<kid>:<base64url(salt16 | nonce12 | ciphertext | tag16)>``.
Each value is encrypted under its own subkey ``HKDF(DEK, salt)``, so the random 96-bit nonce
never meets the 2^32-messages-per-key limit of NIST SP 800-38D. The associated data binds the
value to its place -- ``table|column|row id|v1`` -- so a ciphertext copied to another row or
column does not decrypt.

A **person key** is a random 32-byte key per person (``person_keys``, wrapped as a sealed
value of the store's data keys, ``propdev.security.person_keys``). A value sealed under it is
``p1:<base64url(salt16 | nonce12 | ciphertext | tag16)>``, its subkey ``HKDF(person key,
salt)`` and its associated data ``table|column|row id|p1``. Erasure deletes the person's key,
so every copy of such a value (a dead tuple, the WAL, a replica, a log, a stray dump) is
shredded with it.

Blind indexes (lookups by phone or plate) are HMAC-SHA256 under an *index key*, a separate
random key wrapped by the same master key, specialised per table and column with HKDF.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import re
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from propdev.config.settings import Settings
from propdev.secret_file import create_once
from propdev.security.custody import check_custody
from propdev.security.errors import SecurityError
from propdev.storage import Database

log = structlog.get_logger()

VERSION = "v1"
PERSON_VERSION = "p1"
KEY_BYTES = 32
SALT_BYTES = 16
NONCE_BYTES = 12
_KID = re.compile(r"^[ki]\d{4}$")
DATA = "data"
INDEX = "index"
OPENED_KEYS = 4096  # subkey ciphers kept for values opened again


class CryptoError(SecurityError):
    """Raised when a value cannot be sealed or opened; the message never holds the value."""


class MasterKeyError(CryptoError):
    """Raised when the master key is missing, malformed, or not the one the data keys need."""


class UnknownKeyError(CryptoError):
    """Raised when a sealed value names a key id this keyring does not have."""


class PersonKeyDestroyedError(CryptoError):
    """Raised when a value is sealed under a person's data key that no longer exists: the
    person was erased (crypto-shredding), so the value can never be opened again."""


class NoKeyStoreError(CryptoError):
    """Raised when personal data is sealed, opened or indexed and no key store is attached:
    a key invented on the spot would make the data die with the process."""


def _hkdf(key: bytes, *, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_master_key(raw: str | bytes, *, source: str) -> bytes:
    """Decode a base64 master key of exactly 32 bytes; the error names the source only."""
    try:
        text = raw.decode("ascii") if isinstance(raw, bytes) else raw
        key = base64.b64decode(text.strip(), validate=True)
    except (ValueError, UnicodeDecodeError):
        raise MasterKeyError(f"{source}: not base64") from None
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"{source}: expected {KEY_BYTES} bytes, got {len(key)}")
    return key


def load_or_create_master_key(path: Path) -> bytes:
    """Read the master key file; create it (0600, in a 0700 directory) when it does not exist."""
    if path.exists():
        mode = path.stat().st_mode & 0o077
        if mode:
            log.warning("master_key_file_permissions", path=str(path), mode=oct(mode))
        return parse_master_key(path.read_bytes(), source=str(path))
    key = base64.b64encode(os.urandom(KEY_BYTES)) + b"\n"
    create_once(path, key, dir_mode=0o700)  # another process first: its key wins
    return parse_master_key(path.read_bytes(), source=str(path))


def kek_id(master_key: bytes) -> str:
    """A short public fingerprint of the master key, stored next to what it wrapped."""
    return hashlib.sha256(b"propdev-kek-id|" + master_key).hexdigest()[:16]


@dataclasses.dataclass(frozen=True, slots=True)
class _Keys:
    data: Mapping[str, bytes]
    primary: str
    index: bytes


class Vault:
    """The keyring of one database: seal, open and blind-index values.

    ``await vault.load()`` (or ``load_sync()`` in a worker thread) reads -- and on first use
    creates -- the wrapped keys. Sealing and opening are then CPU only, safe from any thread.
    """

    def __init__(self, db: Database | None, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise MasterKeyError("the master key must be 32 bytes")
        self.db = db
        self._kek = AESGCM(master_key)
        self._kek_id = kek_id(master_key)
        self._keys: _Keys | None = None
        self._lock = threading.Lock()
        self._index_keys: dict[str, bytes] = {}
        # Opening the same value again (a user's name on every /me) skips the HKDF: the
        # subkey's cipher by (key id, salt), at most OPENED_KEYS of them.
        self._opened: dict[tuple[str, bytes], AESGCM] = {}
        # Unwrapped person keys by (user id, wrapped text): the binding holds on a cache hit too.
        self._person_keys: dict[tuple[str, str], bytes] = {}

    @classmethod
    def for_tests(cls) -> Vault:
        """An in-memory keyring with random keys, for tests to attach explicitly
        (``attach_vault(db, Vault.for_tests())``); nothing is persisted, so never in a node."""
        vault = cls(None, os.urandom(KEY_BYTES))
        vault._keys = _Keys({"k0001": os.urandom(KEY_BYTES)}, "k0001", os.urandom(KEY_BYTES))
        return vault

    # -- keyring ------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the keyring from the database (creating the first keys if there are none)."""
        import asyncio

        await asyncio.to_thread(self.load_sync)

    def load_sync(self) -> None:
        with self._lock:
            if self.db is None:
                return
            rows = self._rows()
            if not any(r["purpose"] == DATA for r in rows):
                self._insert(DATA, "k0001")
            if not any(r["purpose"] == INDEX for r in rows):
                self._insert(INDEX, "i0001")
            self._keys = self._unwrap_all(self._rows())
            self._index_keys.clear()
            self._opened.clear()
            self._person_keys.clear()

    def check_sync(self) -> int:
        """Unwrap every stored key without creating any (``run.py doctor``); return how many.
        Raises ``MasterKeyError`` when one is not wrapped by this master key."""
        with self._lock:
            if self.db is None:
                return 0
            rows = self._rows()
            if rows:
                self._unwrap_all(rows)
            return len(rows)

    def rotate(self) -> str:
        """Add a data key that becomes primary; return its id. Sync (worker thread or CLI)."""
        with self._lock:
            keys = self._require()
            number = max(int(k[1:]) for k in keys.data) + 1
            kid = f"k{number:04d}"
            self._insert(DATA, kid)
            self._keys = self._unwrap_all(self._rows())
            return self._keys.primary

    @property
    def primary_kid(self) -> str:
        return self._require().primary

    def kids(self) -> list[str]:
        return sorted(self._require().data)

    def _rows(self) -> list[dict[str, Any]]:
        assert self.db is not None
        with self.db.sync_transaction() as conn:
            import sqlalchemy as sa

            result = conn.execute(sa.text("SELECT kid, purpose, wrapped, kek_id FROM data_keys"))
            return [dict(r) for r in result.mappings()]

    def _insert(self, purpose: str, kid: str) -> None:
        assert self.db is not None
        wrapped = self._wrap(kid, os.urandom(KEY_BYTES))
        self.db.sync_execute(
            "INSERT INTO data_keys (kid, purpose, wrapped, kek_id, created_at)"
            " VALUES (:kid, :purpose, :wrapped, :kek, :now) ON CONFLICT (kid) DO NOTHING",
            kid=kid,
            purpose=purpose,
            wrapped=wrapped,
            kek=self._kek_id,
            now=time.time(),
        )

    def _wrap(self, kid: str, key: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        return _b64(nonce + self._kek.encrypt(nonce, key, b"propdev-dek|" + kid.encode()))

    def _unwrap_all(self, rows: list[dict[str, Any]]) -> _Keys:
        data: dict[str, bytes] = {}
        index = b""
        for row in rows:
            if row["kek_id"] != self._kek_id:
                raise MasterKeyError(
                    f"data key {row['kid']} is wrapped by master key {row['kek_id']}, "
                    f"not by the configured one ({self._kek_id})"
                )
            blob = _unb64(row["wrapped"])
            try:
                key = self._kek.decrypt(
                    blob[:NONCE_BYTES], blob[NONCE_BYTES:], b"propdev-dek|" + row["kid"].encode()
                )
            except InvalidTag:
                raise MasterKeyError(f"data key {row['kid']} does not unwrap") from None
            if row["purpose"] == INDEX:
                index = key
            else:
                data[row["kid"]] = key
        if not data or not index:
            raise CryptoError("the keyring is incomplete")
        primary = max(data, key=lambda k: int(k[1:]))
        return _Keys(data, primary, index)

    def _require(self) -> _Keys:
        keys = self._keys
        if keys is None:
            self.load_sync()
            keys = self._keys
            if keys is None:
                raise CryptoError("the keyring is not loaded")
        return keys

    # -- values -------------------------------------------------------------------------

    def seal(self, plaintext: str, *, table: str, column: str, row_id: str) -> str:
        """Encrypt ``plaintext`` for ``table.column`` of row ``row_id`` under the primary key."""
        keys = self._require()
        kid = keys.primary
        salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
        subkey = _hkdf(keys.data[kid], salt=salt, info=b"propdev-value|" + kid.encode())
        aad = _aad(table, column, row_id)
        body = AESGCM(subkey).encrypt(nonce, plaintext.encode("utf-8"), aad)
        return f"{VERSION}:{kid}:{_b64(salt + nonce + body)}"

    def open(self, sealed: str, *, table: str, column: str, row_id: str) -> str:
        """Decrypt a value sealed for this place; raise ``CryptoError`` if it is not."""
        kid = key_id(sealed)
        if kid is None:
            raise CryptoError(f"{table}.{column}: not a sealed value")
        keys = self._require()
        key = keys.data.get(kid)
        if key is None:
            self.load_sync()  # a key another node (or `keys rotate`) added since we loaded
            key = self._require().data.get(kid)
        if key is None:
            raise UnknownKeyError(f"{table}.{column}: unknown data key {kid}")
        try:
            blob = _unb64(sealed.split(":", 2)[2])
        except ValueError:
            raise CryptoError(f"{table}.{column}: malformed sealed value") from None
        if len(blob) < SALT_BYTES + NONCE_BYTES + 16:
            raise CryptoError(f"{table}.{column}: malformed sealed value")
        salt, nonce, body = blob[:SALT_BYTES], blob[SALT_BYTES:28], blob[28:]
        cipher = self._opened.get((kid, salt))
        if cipher is None:
            cipher = AESGCM(_hkdf(key, salt=salt, info=b"propdev-value|" + kid.encode()))
            if len(self._opened) >= OPENED_KEYS:
                self._opened.clear()  # bounded; refilled by the values read next
            self._opened[(kid, salt)] = cipher
        try:
            clear = cipher.decrypt(nonce, body, _aad(table, column, row_id))
        except InvalidTag:
            log.error("sealed_value_rejected", table=table, column=column, kid=kid)
            raise CryptoError(f"{table}.{column}: the value does not authenticate") from None
        return clear.decode("utf-8")

    # -- person keys ---------------------------------------------------------------------

    def new_person_key(self, user_id: str) -> tuple[bytes, str]:
        """A fresh random person key for ``user_id`` and its wrapped form (a sealed value of
        the primary data key, bound to ``person_keys.key`` of that user)."""
        key = os.urandom(KEY_BYTES)
        return key, self.wrap_person_key(user_id, key)

    def wrap_person_key(self, user_id: str, key: bytes) -> str:
        return self.seal(_b64(key), table="person_keys", column="key", row_id=user_id)

    def unwrap_person_key(self, user_id: str, wrapped: str) -> bytes:
        """The person key of ``user_id`` from its wrapped form (``CryptoError`` if it is not)."""
        key = self._person_keys.get((user_id, wrapped))
        if key is None:
            key = _unb64(self.open(wrapped, table="person_keys", column="key", row_id=user_id))
            if len(key) != KEY_BYTES:
                raise CryptoError("person_keys.key: not a key")
            if len(self._person_keys) >= OPENED_KEYS:
                self._person_keys.clear()
            self._person_keys[(user_id, wrapped)] = key
        return key

    def seal_person(
        self, key: bytes, plaintext: str, *, table: str, column: str, row_id: str
    ) -> str:
        """Encrypt ``plaintext`` for ``table.column`` of ``row_id`` under a person key."""
        salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
        subkey = _hkdf(key, salt=salt, info=b"propdev-person-value")
        aad = _aad(table, column, row_id, PERSON_VERSION)
        body = AESGCM(subkey).encrypt(nonce, plaintext.encode("utf-8"), aad)
        return f"{PERSON_VERSION}:{_b64(salt + nonce + body)}"

    def open_person(
        self, wrapped: str | None, owner: str, sealed: str, *, table: str, column: str, row_id: str
    ) -> str:
        """Decrypt a value sealed under the person key of ``owner``, given that key's wrapped
        form as the store holds it: ``None`` (no such key, the person was erased) raises
        ``PersonKeyDestroyedError``."""
        if wrapped is None:
            raise PersonKeyDestroyedError(f"{table}.{column}: the person's key is destroyed")
        key = self.unwrap_person_key(owner, wrapped)
        try:
            blob = _unb64(sealed.split(":", 1)[1])
        except (ValueError, IndexError):
            raise CryptoError(f"{table}.{column}: malformed sealed value") from None
        if len(blob) < SALT_BYTES + NONCE_BYTES + 16:
            raise CryptoError(f"{table}.{column}: malformed sealed value")
        salt, nonce, body = blob[:SALT_BYTES], blob[SALT_BYTES:28], blob[28:]
        # Cached by the wrapped key's text: only a holder of that text reaches the cipher.
        cipher = self._opened.get((wrapped, salt))
        if cipher is None:
            cipher = AESGCM(_hkdf(key, salt=salt, info=b"propdev-person-value"))
            if len(self._opened) >= OPENED_KEYS:
                self._opened.clear()
            self._opened[(wrapped, salt)] = cipher
        try:
            clear = cipher.decrypt(nonce, body, _aad(table, column, row_id, PERSON_VERSION))
        except InvalidTag:
            log.error("sealed_value_rejected", table=table, column=column, kid=PERSON_VERSION)
            raise CryptoError(f"{table}.{column}: the value does not authenticate") from None
        return clear.decode("utf-8")

    def forget_person_keys(self) -> None:
        """Drop the unwrapped person keys and their ciphers this process holds (erasure)."""
        with self._lock:
            self._person_keys.clear()
            self._opened.clear()

    def open_or_clear(self, value: str, *, table: str, column: str, row_id: str) -> str:
        """``open`` a sealed value; return a legacy clear value (before migration 6) as is."""
        if key_id(value) is None:
            return value
        return self.open(value, table=table, column=column, row_id=row_id)

    def blind_index(self, normalized: str, *, table: str, column: str) -> str:
        """HMAC-SHA256 of an already normalised value under this column's index key."""
        label = f"{table}|{column}"
        key = self._index_keys.get(label)
        if key is None:
            key = _hkdf(self._require().index, salt=None, info=b"propdev-index|" + label.encode())
            self._index_keys[label] = key
        return hmac.new(key, normalized.encode("utf-8"), hashlib.sha256).hexdigest()


def _aad(table: str, column: str, row_id: str, version: str = VERSION) -> bytes:
    return f"{table}|{column}|{row_id}|{version}".encode()


def is_person_sealed(value: str | None) -> bool:
    """Whether ``value`` is sealed under a person key (``p1:…``)."""
    return bool(value) and str(value).startswith(PERSON_VERSION + ":")


def key_id(value: str | None) -> str | None:
    """The key id of a sealed value, or None for anything else (a legacy clear value)."""
    if not value or not value.startswith(VERSION + ":"):
        return None
    parts = value.split(":", 2)
    if len(parts) != 3 or not _KID.match(parts[1]):
        return None
    return parts[1]


def is_sealed(value: str | None) -> bool:
    return key_id(value) is not None


# -- one vault per database -----------------------------------------------------------------

_VAULTS: weakref.WeakKeyDictionary[Database, Vault] = weakref.WeakKeyDictionary()
_VAULTS_LOCK = threading.Lock()


_CURRENT: list[Vault] = []


def attach_vault(db: Database, vault: Vault) -> Vault:
    """Make ``vault`` the keyring used for ``db``'s rows (and this process's current one)."""
    with _VAULTS_LOCK:
        _VAULTS[db] = vault
        _CURRENT[:] = [vault]
    return vault


def current_vault() -> Vault:
    """The vault last attached in this process, for code that has no database at hand
    (``propdev.access.vehicles``); ``NoKeyStoreError`` when none was."""
    with _VAULTS_LOCK:
        if not _CURRENT:
            raise NoKeyStoreError(
                "no key store is attached in this process: open_vault(settings, db) first "
                "(tests: attach_vault(db, Vault.for_tests()))"
            )
        return _CURRENT[0]


def vault_of(db: Database) -> Vault:
    """The vault attached to ``db``; ``NoKeyStoreError`` when none was.

    Nodes, ``seed-demo`` and the CLI attach one built from the settings (``open_vault``);
    tests attach one explicitly (``attach_vault(db, Vault.for_tests())``). Nothing invents a
    key: data sealed under it would be lost with the process.
    """
    with _VAULTS_LOCK:
        vault = _VAULTS.get(db)
    if vault is None:
        raise NoKeyStoreError(
            f"no key store is attached to the database {db.dialect!r}: open_vault(settings, db) "
            "first (tests: attach_vault(db, Vault.for_tests()))"
        )
    return vault


def master_key_from(*, key: str | None, key_file: Path | None, default_file: Path) -> bytes:
    """The master key: the environment value, else the named file, else the default file."""
    if key:
        return parse_master_key(key, source="PROPDEV_MASTER_KEY")
    if key_file is not None:
        if not key_file.exists():
            raise MasterKeyError(f"PROPDEV_MASTER_KEY_FILE={key_file}: no such file")
        return parse_master_key(key_file.read_bytes(), source=str(key_file))
    return load_or_create_master_key(default_file)


async def open_vault(settings: Settings, db: Database) -> Vault:
    """Build ``db``'s vault from the settings' master key, load its keyring and attach it
    (``CustodyError`` when the key is kept where the settings forbid)."""
    check_custody(settings)
    master = master_key_from(
        key=settings.master_key,
        key_file=settings.master_key_file,
        default_file=settings.data_dir / "keys" / "master.key",
    )
    vault = Vault(db, master)
    await vault.load()
    return attach_vault(db, vault)
