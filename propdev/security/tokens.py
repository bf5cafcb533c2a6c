"""Signed JWTs: access tokens (RFC 9068, ``typ: at+jwt``) and OIDC ID tokens.

``TokenIssuer`` signs with the newest key of a ``SigningKeys``; ``TokenVerifier`` checks an
access token on every API request, with the algorithm pinned, exact ``iss`` and ``aud``, the
``typ`` header, required claims, and a bounded cache of tokens already verified.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import json
import re
import secrets
import time
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jwt

from propdev.config.settings import Settings
from propdev.security.errors import InvalidTokenError
from propdev.security.keys import ALGORITHM, SigningKeys

Clock = Callable[[], float]

ACCESS_TOKEN_TYPE = "at+jwt"
ID_TOKEN_TYPE = "JWT"
LEEWAY = 5.0
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")


def certificate_thumbprint(cert_der: bytes) -> str:
    """``x5t#S256`` of a certificate: base64url(SHA-256(DER)) without padding (RFC 8705)."""
    return base64.urlsafe_b64encode(hashlib.sha256(cert_der).digest()).rstrip(b"=").decode()


@dataclasses.dataclass(frozen=True, slots=True)
class Claims:
    """The verified claims of an access token."""

    sub: str
    client_id: str
    scope: frozenset[str]
    roles: frozenset[str]
    amr: tuple[str, ...]
    exp: float
    iat: float
    jti: str
    cnf: Mapping[str, Any] | None
    raw: Mapping[str, Any]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scope

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def sid(self) -> str | None:
        """The grant (refresh family: one login's code and its rotations) the token was issued
        under; None for ``client_credentials`` tokens."""
        sid = self.raw.get("sid")
        return sid if isinstance(sid, str) else None

    @property
    def mfa(self) -> bool:
        """True when the login included a second factor."""
        return "otp" in self.amr or "hwk" in self.amr or "mfa" in self.amr


class TokenIssuer:
    """Signs access and ID tokens for this issuer (``settings.public_url``)."""

    def __init__(self, settings: Settings, keys: SigningKeys, *, clock: Clock = time.time) -> None:
        self.settings = settings
        self.keys = keys
        self.issuer = settings.public_url
        self.audience = settings.audience
        self.access_token_ttl = settings.access_token_ttl
        self._clock = clock

    def issue_access_token(
        self,
        sub: str,
        client_id: str,
        scope: str,
        roles: Iterable[str],
        amr: Iterable[str],
        cnf: Mapping[str, Any] | None = None,
        *,
        sid: str | None = None,
    ) -> str:
        """Return a signed ``at+jwt`` for this API, valid ``access_token_ttl`` seconds;
        ``sid`` names the grant it continues, so revoking the grant refuses the token."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "exp": now + self.access_token_ttl,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": client_id,
            "scope": scope,
            "roles": list(roles),
            "amr": list(amr),
        }
        if cnf is not None:
            claims["cnf"] = dict(cnf)
        if sid is not None:
            claims["sid"] = sid
        return self._sign(claims, ACCESS_TOKEN_TYPE)

    def issue_id_token(
        self,
        sub: str,
        client_id: str,
        *,
        auth_time: float,
        amr: Iterable[str],
        nonce: str | None = None,
        access_token: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Return an OIDC ID token (``typ: JWT``, ``aud`` = the client)."""
        now = int(self._clock())
        claims: dict[str, Any] = dict(extra or {})
        claims.update(
            iss=self.issuer,
            sub=sub,
            aud=client_id,
            exp=now + self.access_token_ttl,
            iat=now,
            auth_time=int(auth_time),
            amr=list(amr),
        )
        if nonce:
            claims["nonce"] = nonce
        if access_token:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            claims["at_hash"] = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
        return self._sign(claims, ID_TOKEN_TYPE)

    def jwks(self) -> dict[str, Any]:
        return self.keys.jwks()

    def _sign(self, claims: dict[str, Any], typ: str) -> str:
        key = self.keys.signing_key
        return jwt.encode(
            claims, key.private_key, algorithm=ALGORITHM, headers={"typ": typ, "kid": key.kid}
        )


class TokenVerifier:
    """Verifies access tokens of this issuer for this API.

    A token verified once is kept (up to ``cache_size`` tokens, least recently used first
    out) until its ``exp``: a repeat costs a dict lookup and a clock read.
    """

    def __init__(
        self,
        settings: Settings,
        keys: SigningKeys,
        *,
        cache_size: int = 10_000,
        leeway: float = LEEWAY,
        clock: Clock = time.time,
        key_refresh_interval: float = 30.0,
    ) -> None:
        self.issuer = settings.public_url
        self.audience = settings.audience
        self.keys = keys
        self.leeway = leeway
        self._clock = clock
        self._cache: collections.OrderedDict[str, Claims] = collections.OrderedDict()
        self._cache_size = cache_size
        self._refresh_interval = key_refresh_interval
        self._last_refresh = float("-inf")
        # Cluster hooks (propdev.registry.Revocations): a revoked token is refused; while the
        # node may have missed revocations, cached verifications are not trusted.
        self.revoked: Callable[[Claims], bool] | None = None
        self.cache_trusted: Callable[[], bool] | None = None

    def verify(self, token: str) -> Claims:
        """Return the claims of a valid access token; raise ``InvalidTokenError`` otherwise."""
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None and self.cache_trusted is not None and not self.cache_trusted():
            del self._cache[token]
            cached = None
        if cached is not None:
            if now <= cached.exp + self.leeway:
                if self.revoked is not None and self.revoked(cached):
                    raise InvalidTokenError("token revoked")
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
            raise InvalidTokenError("token expired")
        claims = self._verify(token, now)
        if self.revoked is not None and self.revoked(claims):
            raise InvalidTokenError("token revoked")
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    def cache_size(self) -> int:
        return len(self._cache)

    def _key_for(self, kid: str, now: float) -> Any:
        key = self.keys.get(kid)
        if key is None and now - self._last_refresh >= self._refresh_interval:
            # A key published by another node since we loaded; re-read at most this often.
            self._last_refresh = now
            self.keys.refresh()
            key = self.keys.get(kid)
        if key is None:
            raise InvalidTokenError("unknown signing key")
        return key.public_key

    def _verify(self, token: str, now: float) -> Claims:
        if not isinstance(token, str) or token.count(".") != 2:
            raise InvalidTokenError("malformed token")
        header = _header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidTokenError("algorithm not allowed")
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidTokenError("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidTokenError("missing kid")
        public_key = self._key_for(kid, now)
        payload = decode_signed(token, public_key, ALGORITHM, self.audience, self.issuer)
        return self._claims(payload, now)

    def _claims(self, payload: dict[str, Any], now: float) -> Claims:
        if payload["iss"] != self.issuer:  # PyJWT compares exactly too; cheap to be sure
            raise InvalidTokenError("wrong issuer")
        exp, iat = check_times(payload, now, self.leeway)
        sub, client_id, jti = payload["sub"], payload["client_id"], payload["jti"]
        scope = payload.get("scope", "")
        roles = payload.get("roles", [])
        amr = payload.get("amr", [])
        cnf = payload.get("cnf")
        if not (
            isinstance(sub, str)
            and isinstance(client_id, str)
            and isinstance(jti, str)
            and isinstance(scope, str)
            and isinstance(roles, list)
            and all(isinstance(r, str) for r in roles)
            and isinstance(amr, list)
            and all(isinstance(a, str) for a in amr)
            and (cnf is None or isinstance(cnf, dict))
        ):
            raise InvalidTokenError("malformed claims")
        return Claims(
            sub=sub,
            client_id=client_id,
            scope=frozenset(scope.split()),
            roles=frozenset(roles),
            amr=tuple(amr),
            exp=float(exp),
            iat=float(iat),
            jti=jti,
            cnf=types.MappingProxyType(cnf) if cnf is not None else None,
            raw=types.MappingProxyType(payload),
        )


def check_certificate_binding(claims: Claims, cert_der: bytes | None) -> None:
    """Raise ``InvalidTokenError`` unless a certificate-bound token came with its certificate.

    Tokens without ``cnf`` pass. A token with ``cnf.x5t#S256`` needs the same client
    certificate on the connection that presents it (RFC 8705 §3).
    """
    if claims.cnf is None or "x5t#S256" not in claims.cnf:
        return
    if cert_der is None:
        raise InvalidTokenError("certificate-bound token without a client certificate")
    bound = str(claims.cnf["x5t#S256"]).encode()
    if not secrets.compare_digest(bound, certificate_thumbprint(cert_der).encode()):
        raise InvalidTokenError("certificate does not match the token")


_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, only to choose the key: ``jwt.decode`` below checks the whole token
    (every segment's alphabet, the signature) again. ``jwt.get_unverified_header`` would do
    the same work here, at about a third of a cold token's cost (a per-character alphabet
    check in Python over all three segments)."""
    segment = token.partition(".")[0]
    if not _B64URL.fullmatch(segment):
        raise InvalidTokenError("malformed token")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidTokenError("malformed token") from None
    if not isinstance(header, dict):
        raise InvalidTokenError("malformed token")
    return header


def decode_signed(
    token: str,
    key: Any,
    alg: str,
    audience: str,
    issuer: str,
    required: Iterable[str] = REQUIRED_CLAIMS,
) -> dict[str, Any]:
    """The token's claims once its signature (``alg`` only), audience, issuer and ``required``
    claims are checked; times are the caller's to check, against its clock.
    ``InvalidTokenError`` says what is wrong."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            options={
                "require": list(required),
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidAudienceError:
        raise InvalidTokenError("wrong audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidTokenError("wrong issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidTokenError(f"missing claim {exc.claim}") from None
    except jwt.InvalidSignatureError:
        raise InvalidTokenError("bad signature") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise InvalidTokenError("malformed token") from None
    return payload


def check_times(payload: Mapping[str, Any], now: float, leeway: float) -> tuple[float, float]:
    """``exp``, ``iat`` and (if present) ``nbf`` against ``now``, with ``leeway`` seconds;
    ``InvalidTokenError`` says which failed. Returns ``exp`` and ``iat``."""
    exp, iat = payload["exp"], payload["iat"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat)):
        raise InvalidTokenError("malformed time claims")
    if now > exp + leeway:
        raise InvalidTokenError("token expired")
    if iat > now + leeway:
        raise InvalidTokenError("token issued in the future")
    nbf = payload.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + leeway:
        raise InvalidTokenError("token not yet valid")
    return float(exp), float(iat)
