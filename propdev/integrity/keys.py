"""The checkpoint key: an Ed25519 key of its own (not the token-signing key), in the data dir.

``<data dir>/audit-checkpoint-key.pem`` (PKCS#8, 0600) is the current private key, created once
by the first node that needs it. ``<data dir>/audit-checkpoint-keys.pub`` lists the public
half of every checkpoint key the data dir has had, one verifier key a line in the C2SP
signed-note form ``name+hex(key id)+base64(0x01 || public key)``, the key id being
``SHA-256(name || 0x0A || 0x01 || public key)[:4]``. Rotation writes a new private key over the
old one (destroyed) and adds its line, so checkpoints signed by an old key still verify.

Notes are C2SP signed notes: the text (ending in a newline), a blank line, and the signature
line ``— <name> base64(key id || Ed25519 signature over the text)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from propdev.integrity.errors import BadCheckpointError, CheckpointKeyError
from propdev.secret_file import create_once

__all__ = (
    "KEY_FILE",
    "ORIGIN",
    "PUBLIC_FILE",
    "CheckpointSigner",
    "VerifierKey",
    "current_key",
    "open_note",
    "read_verifier_keys",
    "rotate_checkpoint_key",
    "signer_for",
)

ORIGIN = "propdev/audit"  # the key name and the checkpoints' origin line
KEY_FILE = "audit-checkpoint-key.pem"
PUBLIC_FILE = "audit-checkpoint-keys.pub"
_ED25519 = b"\x01"
_DASH = "\u2014"


def _key_id(name: str, raw: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + raw).digest()[:4]


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A checkpoint key's public half, as a verifier knows it."""

    name: str
    key_id: bytes
    public: Ed25519PublicKey

    @classmethod
    def of(cls, public: Ed25519PublicKey, name: str = ORIGIN) -> VerifierKey:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(name, _key_id(name, raw), public)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read ``name+hex(key id)+base64(0x01 || key)``; ``CheckpointKeyError`` if bad."""
        name, _, rest = text.strip().partition("+")
        hex_id, _, b64 = rest.partition("+")
        try:
            blob = base64.b64decode(b64, validate=True)
            key_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise CheckpointKeyError(f"not a verifier key: {text.strip()!r}") from None
        if not name or len(key_id) != 4 or len(blob) != 33 or blob[:1] != _ED25519:
            raise CheckpointKeyError(f"not an Ed25519 verifier key: {text.strip()!r}")
        if _key_id(name, blob[1:]) != key_id:
            raise CheckpointKeyError(f"verifier key {text.strip()!r}: its key id does not match")
        return cls(name, key_id, Ed25519PublicKey.from_public_bytes(blob[1:]))

    @property
    def hex_id(self) -> str:
        return self.key_id.hex()

    def text(self) -> str:
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"{self.name}+{self.hex_id}+{base64.b64encode(_ED25519 + raw).decode()}"


class CheckpointSigner:
    """Signs checkpoint texts as C2SP signed notes with one Ed25519 key."""

    __slots__ = ("_key", "verifier")

    def __init__(self, key: Ed25519PrivateKey, name: str = ORIGIN) -> None:
        self._key = key
        self.verifier = VerifierKey.of(key.public_key(), name)

    def sign(self, text: str) -> str:
        """The signed note of ``text`` (which must end in a newline)."""
        if not text.endswith("\n"):
            raise ValueError("a note's text ends with a newline")
        signature = self._key.sign(text.encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{_DASH} {self.verifier.name} {blob}\n"


def open_note(note: str, keys: Iterable[VerifierKey]) -> tuple[str, VerifierKey]:
    """The text of a signed note and the known key whose signature verifies on it.

    Signatures by keys not in ``keys`` are ignored (C2SP); ``BadCheckpointError`` when the
    note is malformed or none verifies.
    """
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not text:
        raise BadCheckpointError("not a signed note: no blank line before the signatures")
    text += "\n"
    known = {(k.name, k.key_id): k for k in keys}
    for line in signatures.splitlines():
        dash, _, rest = line.partition(" ")
        name, _, b64 = rest.partition(" ")
        if dash != _DASH or not name or not b64:
            raise BadCheckpointError(f"not a signature line: {line!r}")
        try:
            blob = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise BadCheckpointError(f"not a signature line: {line!r}") from None
        key = known.get((name, blob[:4]))
        if key is None:
            continue
        try:
            key.public.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise BadCheckpointError(f"the signature of key {key.hex_id} does not verify") from None
        return text, key
    raise BadCheckpointError("no signature by a known checkpoint key")


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise CheckpointKeyError(f"{path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointKeyError(f"{path}: not an Ed25519 private key")
    return key


def read_verifier_keys(path: Path) -> list[VerifierKey]:
    """The verifier keys in ``path``, one a line (blank lines and ``#`` comments skipped), or
    the one public key of a PEM file."""
    try:
        content = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointKeyError(f"{path}: {exc}") from None
    if content.lstrip().startswith("-----BEGIN PUBLIC KEY-----"):  # one key, as PEM
        try:
            public = serialization.load_pem_public_key(content.encode())
        except ValueError as exc:
            raise CheckpointKeyError(f"{path}: {exc}") from None
        if not isinstance(public, Ed25519PublicKey):
            raise CheckpointKeyError(f"{path}: not an Ed25519 public key")
        return [VerifierKey.of(public)]
    lines = content.splitlines()
    found: dict[bytes, VerifierKey] = {}
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            key = VerifierKey.parse(line)
            found.setdefault(key.key_id, key)
    return list(found.values())


def _publish(data_dir: Path, key: VerifierKey) -> None:
    """Add ``key`` to the data dir's verifier keys unless it is there."""
    path = data_dir / PUBLIC_FILE
    if path.exists() and key.key_id in {k.key_id for k in read_verifier_keys(path)}:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with os.fdopen(fd, "a") as fh:  # one short line: appended whole by O_APPEND
        fh.write(key.text() + "\n")


def signer_for(data_dir: Path) -> CheckpointSigner:
    """The data dir's checkpoint signer, its key created on first use (the first process to
    create it wins) and its public half published beside it."""
    path = data_dir / KEY_FILE
    if not path.exists():
        create_once(path, _pem(Ed25519PrivateKey.generate()))
    signer = CheckpointSigner(_load(path))
    _publish(data_dir, signer.verifier)
    return signer


def current_key(data_dir: Path) -> VerifierKey | None:
    """The verifier key of the data dir's checkpoint key, None before the first."""
    path = data_dir / KEY_FILE
    return VerifierKey.of(_load(path).public_key()) if path.exists() else None


def rotate_checkpoint_key(data_dir: Path) -> tuple[VerifierKey | None, VerifierKey]:
    """Replace the checkpoint key: (the old verifier key or None, the new one).

    The new public key is published first, so that every checkpoint it signs verifies; the
    old private key is overwritten (a node reads the key file at each checkpoint), its
    public key stays in the verifier keys.
    """
    path = data_dir / KEY_FILE
    old = current_key(data_dir)
    if old is not None:
        _publish(data_dir, old)
    key = Ed25519PrivateKey.generate()
    new = VerifierKey.of(key.public_key())
    data_dir.mkdir(parents=True, exist_ok=True)
    _publish(data_dir, new)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_pem(key))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return old, new


def verifier_keys_text(keys: Sequence[VerifierKey]) -> str:
    return "".join(k.text() + "\n" for k in keys)
