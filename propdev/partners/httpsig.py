"""HTTP Message Signatures (RFC 9421) on our calls to partners that verify them.

A partner named in ``PROPDEV_PARTNER_SIGNING`` gets every call of its HTTPS adapter signed with
our key for it, ``<data dir>/partners/<partner>/signing-key.pem`` (PKCS#8, mode 0600, made on
first use; ``run.py partner signing-key NAME`` prints its public half for the vendor).

Each signature (label ``sig1``, tag ``propdev``) covers ``@method``, ``@target-uri``, the
``idempotency-key`` and ``content-type`` we send, and ``content-digest`` (RFC 9530, sha-256)
when there is a body; its parameters are ``created``, ``expires`` (``LIFETIME`` seconds
later), ``keyid``, ``alg`` and a random ``nonce``. The signer builds its
signature base itself (it covers a fixed, known set of components, so that is a few string
joins); the verifier, which the vendor simulator uses, is the ``http-message-signatures``
library's (a full RFC 9421 implementation), wrapped in our policy: what must be covered, the
tag, the maximum age, a nonce never seen before, and a name for each refusal (``REASONS``).

The key is loaded once per adapter; a call costs one signature and one SHA-256 of the body.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)

from propdev.config import PartnerSigning, Settings
from propdev.partners.apikey import api_key_path
from propdev.partners.errors import SigningKeyError
from propdev.secret_file import create_once

KEY_NAME = "signing-key.pem"
LABEL = "sig1"
TAG = "propdev"
LIFETIME = 30
"""Seconds from ``created`` to ``expires``."""
CLOCK_SKEW = 5
"""Seconds of clock difference a verifier forgives (the library's own tolerance)."""
SIGNED_FIELDS = ("idempotency-key", "content-type")
"""Header fields covered whenever the request carries them."""
REQUIRED = ("@method", "@target-uri")
MAX_NONCES = 100_000

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
_ALGORITHMS = {
    "ed25519": algorithms.ED25519,
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
}
_JOSE_ALG = {"ed25519": "EdDSA", "ecdsa-p256-sha256": "ES256"}

REASONS = (
    "unsigned",
    "expired",
    "not_yet_valid",
    "unknown_key",
    "wrong_algorithm",
    "not_covered",
    "digest_mismatch",
    "replayed",
    "bad_signature",
)
"""Why a verifier refuses a request (``RequestVerifier.verify``)."""


class _Headers(Protocol):
    def items(self) -> Iterable[tuple[str, str]]: ...

    def __iter__(self) -> Any: ...

    def __contains__(self, name: object) -> bool: ...


@dataclass(slots=True)
class _Request:
    """The request as the library reads it: method, absolute URL as sent, header fields."""

    method: str
    url: str
    headers: Any


# -- keys ---------------------------------------------------------------------------------------


def signing_key_path(data_dir: Path, partner_id: str) -> Path:
    return api_key_path(data_dir, partner_id).with_name(KEY_NAME)


def _generate(algorithm: str) -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ecdsa-p256-sha256":
        return ec.generate_private_key(ec.SECP256R1())
    raise SigningKeyError(f"no such signing algorithm {algorithm!r}")


def _fits(key: object, algorithm: str) -> bool:
    if algorithm == "ed25519":
        return isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey)
    if algorithm == "ecdsa-p256-sha256":
        return isinstance(
            key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey
        ) and isinstance(key.curve, ec.SECP256R1)
    return False


def signing_key(data_dir: Path, partner_id: str, algorithm: str) -> PrivateKey:
    """Our private key for signing calls to ``partner_id``, created (atomically, once, 0600) if
    the data dir has none. Raises ``SigningKeyError`` if the file holds another kind of key."""
    path = signing_key_path(data_dir, partner_id)
    if not path.exists():
        pem = _generate(algorithm).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        create_once(path, pem)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: not a readable unencrypted PEM private key") from exc
    if not _fits(key, algorithm):
        raise SigningKeyError(f"{path}: a {type(key).__name__} cannot sign {algorithm}")
    assert isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwk_members(key: PublicKey) -> dict[str, str]:
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    numbers = key.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(key: PublicKey) -> str:
    """The key's JWK thumbprint (RFC 7638, SHA-256): our default ``keyid``."""
    members = json.dumps(_jwk_members(key), sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(members.encode()).digest())


def public_jwk(key: PublicKey, *, key_id: str, algorithm: str) -> dict[str, str]:
    """The public key as a JWK for the vendor (``alg`` in JOSE's name, RFC 9421 §3.3.7)."""
    return {**_jwk_members(key), "kid": key_id, "alg": _JOSE_ALG[algorithm], "use": "sig"}


def public_pem(key: PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True, slots=True)
class PartnerKey:
    """A signing partner's key pair as configured: what the vendor needs to verify us."""

    partner_id: str
    algorithm: str
    key_id: str
    private_key: PrivateKey = field(repr=False)

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def jwk(self) -> dict[str, str]:
        return public_jwk(self.public_key, key_id=self.key_id, algorithm=self.algorithm)

    def pem(self) -> str:
        return public_pem(self.public_key)


def partner_key(data_dir: Path, config: PartnerSigning) -> PartnerKey:
    """The key pair for ``config`` (made if missing); key id as configured, else its
    thumbprint."""
    key = signing_key(data_dir, config.partner_id, config.algorithm)
    key_id = config.key_id or thumbprint(key.public_key())
    return PartnerKey(config.partner_id, config.algorithm, key_id, key)


# -- signing ------------------------------------------------------------------------------------


def sf_string(value: str) -> str:
    """``value`` as a Structured Field String (RFC 8941 §4.1.6): printable ASCII, quoted."""
    if not (value.isascii() and value.isprintable()):  # " " to "~"
        raise ValueError(f"not printable ASCII: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def signature_params(components: Sequence[str], params: Sequence[tuple[str, int | str]]) -> str:
    """The ``@signature-params`` value (RFC 9421 §2.3): the covered components' names as an
    Inner List, then the parameters (Integers or Strings)."""
    inner = " ".join(sf_string(name) for name in components)
    rest = "".join(
        f";{key}={value}" if isinstance(value, int) else f";{key}={sf_string(value)}"
        for key, value in params
    )
    return f"({inner}){rest}"


def signature_base(components: Sequence[tuple[str, str]], params: str) -> bytes:
    """The signature base (RFC 9421 §2.5) of components given as (lower-case name, value)."""
    lines = []
    for name, value in components:
        if "\n" in value or "\r" in value:
            raise ValueError(f"component {name!r} spans lines")
        lines.append(f"{sf_string(name)}: {value}")
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines).encode()


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` of ``body`` (RFC 9530), SHA-256."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


def raw_signature(key: PrivateKey, base: bytes) -> bytes:
    """RFC 9421 §3.3.6 / §3.3.4: Ed25519 as is; ECDSA P-256 SHA-256 as r || s, 32 bytes each."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(base)
    r, s = decode_dss_signature(key.sign(base, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class RequestSigner:
    """Signs requests with one loaded key: ``sign()`` adds ``Content-Digest`` (with a body),
    ``Signature-Input`` and ``Signature`` to the headers given.

    It builds the signature base itself (a few string joins: it knows exactly what it covers),
    about as cheap as the signature; the verifier is the library's, so every test that verifies
    is also an interoperability test."""

    __slots__ = ("_algorithm", "_clock", "_key", "_key_id", "_lifetime")

    def __init__(
        self,
        private_key: PrivateKey,
        *,
        algorithm: str,
        key_id: str,
        lifetime: int = LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _fits(private_key, algorithm):
            raise SigningKeyError(f"a {type(private_key).__name__} cannot sign {algorithm}")
        sf_string(key_id)  # printable ASCII, or ValueError now rather than per call
        self._key = private_key
        self._algorithm = algorithm
        self._key_id = key_id
        self._lifetime = lifetime
        self._clock = clock

    @classmethod
    def for_key(cls, key: PartnerKey, **options: Any) -> RequestSigner:
        return cls(key.private_key, algorithm=key.algorithm, key_id=key.key_id, **options)

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> dict[str, str]:
        """Sign the request about to be sent to ``url`` (absolute, exactly as sent); returns
        ``headers``, completed. Without a body no digest is covered (a body added on the way
        then fails verification)."""
        if body:
            headers["Content-Digest"] = content_digest(body)
        values = {name.lower(): value.strip() for name, value in headers.items()}
        components = [("@method", method.upper()), ("@target-uri", url)]
        components += [(name, values[name]) for name in SIGNED_FIELDS if name in values]
        if body:
            components.append(("content-digest", values["content-digest"]))
        created = int(self._clock())
        params = signature_params(
            [name for name, _ in components],
            [
                ("created", created),
                ("keyid", self._key_id),
                ("alg", self._algorithm),
                ("expires", created + self._lifetime),
                ("nonce", secrets.token_urlsafe(16)),
                ("tag", TAG),
            ],
        )
        signature = raw_signature(self._key, signature_base(components, params))
        headers["Signature-Input"] = f"{LABEL}={params}"
        headers["Signature"] = f"{LABEL}=:{base64.b64encode(signature).decode()}:"
        return headers


def request_signer(settings: Settings, partner_id: str) -> RequestSigner | None:
    """The signer for ``partner_id``'s calls, if ``PROPDEV_PARTNER_SIGNING`` names it."""
    config = settings.signing_for(partner_id)
    if config is None:
        return None
    return RequestSigner.for_key(partner_key(settings.data_dir, config))


# -- verifying (the vendor's side; the simulator uses it) ---------------------------------------


class _Verifier(HTTPMessageVerifier):
    max_clock_skew = dt.timedelta(seconds=CLOCK_SKEW)


def _reason(error: Exception) -> str:
    text = str(error)
    if "in the past" in text or "maximum allowable age" in text:
        return "expired"
    if "in the future" in text:
        return "not_yet_valid"
    if "resolve verification key" in text:
        return "unknown_key"
    if "Unexpected algorithm" in text:
        return "wrong_algorithm"
    if "was not covered" in text or "requires a signed Content-Digest" in text:
        return "not_covered"
    if "does not match the message body" in text:
        return "digest_mismatch"
    return "bad_signature"


class RequestVerifier:
    """Checks requests signed by one key, as a vendor would: ``verify()`` returns None for a
    good one, else the reason (one of ``REASONS``); ``counts`` tallies outcomes (``"ok"`` and
    the reasons)."""

    def __init__(
        self,
        public_key: PublicKey,
        *,
        algorithm: str,
        key_id: str,
        max_age: int = LIFETIME + CLOCK_SKEW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _fits(public_key, algorithm):
            raise SigningKeyError(f"a {type(public_key).__name__} cannot verify {algorithm}")
        self._verifier = _Verifier(
            signature_algorithm=_ALGORITHMS[algorithm],
            key_resolver=MappingKeyResolver(private_keys={}, public_keys={key_id: public_key}),
        )
        self.key_id = key_id
        self._max_age = dt.timedelta(seconds=max_age)
        self._clock = clock
        self._nonces: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.counts: collections.Counter[str] = collections.Counter()

    @classmethod
    def for_key(cls, key: PartnerKey, **options: Any) -> RequestVerifier:
        return cls(key.public_key, algorithm=key.algorithm, key_id=key.key_id, **options)

    def verify(self, method: str, url: str, headers: _Headers, body: bytes) -> str | None:
        """None if the request to ``url`` (absolute, as received) is signed by our key, covers
        what it must, is fresh and new; else why not."""
        reason = self._check(method, url, headers, body)
        self.counts[reason or "ok"] += 1
        return reason

    def _check(self, method: str, url: str, headers: _Headers, body: bytes) -> str | None:
        if "Signature-Input" not in headers or "Signature" not in headers:
            return "unsigned"
        present = {name.lower() for name in headers}
        if not body:  # clients label even an empty POST (aiohttp: application/octet-stream)
            present.discard("content-type")
        required = [*REQUIRED, *(name for name in SIGNED_FIELDS if name in present)]
        try:
            results = self._verifier.verify(
                _Request(method.upper(), url, headers),
                max_age=self._max_age,
                expect_tag=TAG,
                require_components=required,
                body=body,
            )
        except (InvalidSignature, HTTPMessageSignaturesException) as exc:
            return _reason(exc)
        now = self._clock()
        for result in results:
            expires = result.parameters.get("expires")
            nonce = result.nonce
            if not isinstance(expires, int) or not isinstance(nonce, str) or not nonce:
                return "not_covered"  # our profile: every signature expires and has a nonce
            if not self._remember(nonce, float(expires) + CLOCK_SKEW, now):
                return "replayed"
        return None

    def _remember(self, nonce: str, until: float, now: float) -> bool:
        while self._nonces and next(iter(self._nonces.values())) < now:
            self._nonces.popitem(last=False)
        if nonce in self._nonces:
            return False
        self._nonces[nonce] = until
        if len(self._nonces) > MAX_NONCES:
            self._nonces.popitem(last=False)
        return True

    def snapshot(self) -> dict[str, Any]:
        """For the simulator's control API: the key id and the counts."""
        refused = {r: self.counts[r] for r in REASONS if self.counts[r]}
        return {"key_id": self.key_id, "verified": self.counts["ok"], "refused": refused}


def request_verifier(settings: Settings, partner_id: str) -> RequestVerifier | None:
    """A verifier of our calls to ``partner_id`` (for its simulator), if we sign them."""
    config = settings.signing_for(partner_id)
    if config is None:
        return None
    return RequestVerifier.for_key(partner_key(settings.data_dir, config))
