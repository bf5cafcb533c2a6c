"""The backup file: a clear header, then the archive encrypted in chunks (AES-256-GCM).

Layout::

    MAGIC ("PROPDEV-BACKUP" + LF)
    u32 big-endian n, then n bytes: the header (JSON, UTF-8)
    32 bytes: SHA-256 of the header (a damaged header is told apart from a wrong key)
    records until the end: u32 big-endian n, then n bytes of ciphertext + 16-byte GCM tag

The header is public (format, created_at, engine, schema version, cluster id, HKDF salt, key
check value): it says what the file is without the key. Each backup has its own key,
``HKDF-SHA256(master key, salt, "propdev-backup-v1|encrypt")``; the key check value is an
HMAC under a second key derived the same way, so a wrong master key is named as such before
anything is decrypted. Chunks follow the STREAM construction (Hoang, Reyhanitabar, Rogaway,
Vizár 2015): the nonce is the chunk's number and a last-chunk flag, the associated data the
header's digest, so a reordered, dropped, appended or truncated chunk -- or an edited header --
fails authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Mapping
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from propdev.backup.errors import DamagedBackupError, UnsupportedBackupError, WrongKeyError

MAGIC = b"PROPDEV-BACKUP\n"
FORMAT = 1
CHUNK = 1 << 20  # plaintext bytes per record
TAG = 16
MAX_HEADER = 64 * 1024
_LEN = struct.Struct(">I")


def _derive(master_key: bytes, salt: bytes, purpose: bytes) -> bytes:
    info = b"propdev-backup-v1|" + purpose
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(master_key)


def key_check(master_key: bytes, salt: bytes) -> str:
    """The key check value of ``master_key`` for a backup with this salt (public)."""
    check = _derive(master_key, salt, b"check")
    return hmac.new(check, b"propdev-backup key check", hashlib.sha256).hexdigest()[:32]


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _header_bytes(header: Mapping[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


class EncryptingWriter:
    """A write-only file object: what is written is encrypted, a record per ``CHUNK``.

    ``close()`` writes the last record (possibly empty) and is required: without it the file is
    truncated, and reading it says so.
    """

    def __init__(self, out: IO[bytes], header: Mapping[str, Any], master_key: bytes) -> None:
        salt = bytes.fromhex(str(header["salt"]))
        raw = _header_bytes(header)
        self._out = out
        self._aead = AESGCM(_derive(master_key, salt, b"encrypt"))
        self._aad = hashlib.sha256(raw).digest()
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        out.write(MAGIC + _LEN.pack(len(raw)) + raw + self._aad)

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) > CHUNK:
            self._record(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(data)

    def _record(self, plain: bytes, *, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._index, last), plain, self._aad)
        self._out.write(_LEN.pack(len(sealed)) + sealed)
        self._index += 1

    def close(self) -> None:
        if not self._closed:
            self._record(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True


def read_header(src: IO[bytes]) -> dict[str, Any]:
    """Read and check the clear header; ``src`` is left at the first record."""
    if src.read(len(MAGIC)) != MAGIC:
        raise DamagedBackupError("not a propdev backup (no PROPDEV-BACKUP header)")
    size_bytes = src.read(_LEN.size)
    if len(size_bytes) != _LEN.size:
        raise DamagedBackupError("truncated: the header is incomplete")
    (size,) = _LEN.unpack(size_bytes)
    if size > MAX_HEADER:
        raise DamagedBackupError("damaged: the header length is implausible")
    raw = src.read(size)
    digest = src.read(32)
    if len(raw) != size or len(digest) != 32:
        raise DamagedBackupError("truncated: the header is incomplete")
    if not hmac.compare_digest(hashlib.sha256(raw).digest(), digest):
        raise DamagedBackupError("damaged: the header does not match its checksum")
    try:
        header = json.loads(raw)
    except ValueError:
        raise DamagedBackupError("damaged: the header is not JSON") from None
    if not isinstance(header, dict):
        raise DamagedBackupError("damaged: the header is not an object")
    if header.get("format") != FORMAT:
        raise UnsupportedBackupError(
            f"backup format {header.get('format')!r} is not one this propdev reads ({FORMAT})"
        )
    return header


class DecryptingReader:
    """A read-only file object over the records after the header: authenticated plaintext.

    Checks the key check value first (``WrongKeyError``); a record that does not authenticate,
    or an end of file before the last record, is ``DamagedBackupError``. ``finished`` turns
    true once the last record has been read and nothing follows it.
    """

    def __init__(self, src: IO[bytes], header: Mapping[str, Any], master_key: bytes) -> None:
        try:
            salt = bytes.fromhex(str(header["salt"]))
            expected = str(header["key_check"])
        except (KeyError, ValueError):
            raise DamagedBackupError("damaged: the header has no valid salt or key check") from None
        if not hmac.compare_digest(key_check(master_key, salt), expected):
            raise WrongKeyError(
                "the backup was made under another master key than the configured one"
            )
        self._src = src
        self._aead = AESGCM(_derive(master_key, salt, b"encrypt"))
        self._aad = hashlib.sha256(_header_bytes(header)).digest()
        self._index = 0
        self._buffer = b""
        self._pending = self._read_record()
        self.finished = False

    def _read_record(self) -> bytes | None:
        size_bytes = self._src.read(_LEN.size)
        if not size_bytes:
            return None
        if len(size_bytes) != _LEN.size:
            raise DamagedBackupError(f"truncated: chunk {self._index} is incomplete")
        (size,) = _LEN.unpack(size_bytes)
        if size < TAG or size > CHUNK + TAG:
            raise DamagedBackupError(f"damaged: chunk {self._index} has an implausible length")
        sealed = self._src.read(size)
        if len(sealed) != size:
            raise DamagedBackupError(f"truncated: chunk {self._index} is incomplete")
        return sealed

    def _next(self) -> bytes:
        sealed = self._pending
        if sealed is None:
            raise DamagedBackupError("truncated: the last chunk is missing")
        following = self._read_record()
        last = following is None
        try:
            plain = self._aead.decrypt(_nonce(self._index, last), sealed, self._aad)
        except InvalidTag:
            if last:
                try:  # authentic, but not the last one: the file was cut after it
                    self._aead.decrypt(_nonce(self._index, False), sealed, self._aad)
                except InvalidTag:
                    pass
                else:
                    raise DamagedBackupError("truncated: the last chunk is missing") from None
            raise DamagedBackupError(
                f"damaged: chunk {self._index} does not authenticate"
            ) from None
        self._index += 1
        self._pending = following
        if last:
            self.finished = True
        return plain

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buffer) < size) and not self.finished:
            self._buffer += self._next()
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def drain(self) -> None:
        """Read (and authenticate) every record left; raise if the file does not end well."""
        while not self.finished:
            self._next()
        self._buffer = b""
