"""An external OIDC provider (Keycloak, ...) as an additional trusted issuer of access tokens.

``ExternalVerifier`` reads the provider's discovery document
(``<issuer>/.well-known/openid-configuration``) and its JWKS with aiohttp -- never a blocking
client on the event loop -- and verifies the provider's access tokens for this API:

- the discovery document's ``issuer`` must equal the configured issuer exactly (OIDC
  Discovery §4.3), and its ``jwks_uri`` must be HTTPS; otherwise no key is trusted;
- keys come only from that JWKS (never ``jku``/``x5u``/``jwk`` headers); an unknown ``kid``
  re-reads it, at most once per ``refetch_interval`` seconds whatever the number of unknown
  kids (a flood of random kids costs one fetch), concurrent misses sharing that fetch;
- algorithms are pinned (``ALGORITHMS``, asymmetric only) and must fit the key's type;
  ``alg: none`` and HMAC are refused before any key is looked at;
- ``iss`` exact, ``aud`` contains the configured audience, ``sub``/``exp``/``iat`` required,
  expiry with at most 5 s of leeway, ID tokens (payload ``typ: ID`` or a ``nonce``) refused.

The caller's identity is the pair (``iss``, ``sub``): the ``Claims.sub`` handed to the API is
``ext:<issuer tag>:<sub>`` (``subject_of``), so an external subject can never be taken for a
local user id (local ids are UUIDs). Roles come from a configurable claim path
(``realm_access.roles`` for Keycloak) and are kept only when they are roles this API knows
(``MAPPED_ROLES``; never ``partner``: partners are mTLS clients of the embedded server).
With no roles claim configured, external callers reach only ``AUTHENTICATED`` routes.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import hashlib
import json
import ssl
import time
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import structlog

from propdev.config.settings import Settings
from propdev.security.errors import InvalidTokenError
from propdev.security.tokens import LEEWAY, Claims, check_times, decode_signed

log = structlog.get_logger()

Clock = Callable[[], float]

ALGORITHMS = ("PS256", "RS256", "ES256")
"""Pinned, asymmetric; RS256 because Keycloak signs with it by default."""
_KEY_TYPES = {"PS256": "RSA", "RS256": "RSA", "ES256": "EC"}
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat")
MAPPED_ROLES = frozenset({"resident", "operator", "admin", "auditor", "guest"})
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt", "JWT"})
MAX_DOCUMENT = 256 * 1024
FETCH_TIMEOUT = 5.0


def issuer_tag(issuer: str) -> str:
    """A short stable tag of an issuer URL (the first 12 hex of its SHA-256)."""
    return hashlib.sha256(issuer.encode()).hexdigest()[:12]


def subject_of(issuer: str, sub: str) -> str:
    """The API's subject for (``iss``, ``sub``): ``ext:<issuer tag>:<sub>``."""
    return f"ext:{issuer_tag(issuer)}:{sub}"


def claim_at(payload: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``realm_access.roles``), or None."""
    value: Any = payload
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _peek_payload(token: str) -> dict[str, Any] | None:
    """The unverified payload of a compact JWS, or None when it is not one (routing only)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


@dataclasses.dataclass(frozen=True, slots=True)
class _Key:
    """A key of the provider's JWKS and what it may verify."""

    jwk: jwt.PyJWK
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own ``alg``, when it names one

    def fits(self, alg: str) -> bool:
        if self.alg is not None and self.alg != alg:
            return False
        if self.kty != _KEY_TYPES[alg]:
            return False
        return self.kty != "EC" or self.crv == "P-256"


class ExternalVerifier:
    """Verifies access tokens of one external OIDC issuer for this API."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        ca_file: Path | None = None,
        roles_claim: str | None = None,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        refetch_interval: float = 30.0,
        max_key_age: float = 3600.0,
        leeway: float = LEEWAY,
        cache_size: int = 10_000,
    ) -> None:
        if leeway > LEEWAY:
            raise ValueError(f"leeway may be at most {LEEWAY} s")
        self.issuer = issuer
        self.audience = audience
        self.roles_claim = roles_claim
        self.refetch_interval = refetch_interval
        self.max_key_age = max_key_age
        self.leeway = leeway
        self.fetches = 0  # discovery + JWKS reads, for tests and the admin view
        self._ca_file = ca_file
        self._clock = clock
        self._monotonic = monotonic
        self._keys: dict[str, _Key] = {}
        self._fetched_at = float("-inf")  # last successful read
        self._tried_at = float("-inf")  # last attempt, successful or not
        self._inflight: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._cache: collections.OrderedDict[str, Claims] = collections.OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ExternalVerifier | None:
        """The verifier ``settings`` configure, or None without ``PROPDEV_EXTERNAL_OIDC_ISSUER``."""
        if settings.external_oidc_issuer is None:
            return None
        return cls(
            settings.external_oidc_issuer,
            settings.external_oidc_audience or settings.audience,
            ca_file=settings.external_oidc_ca_file,
            roles_claim=settings.external_oidc_roles_claim,
            **kwargs,
        )

    # -- routing ----------------------------------------------------------------------------

    def claims_issuer(self, token: str) -> bool:
        """True when ``token`` says it comes from this issuer (unverified: only to pick the
        verifier; ``verify`` checks everything)."""
        payload = _peek_payload(token)
        return payload is not None and payload.get("iss") == self.issuer

    # -- verification -----------------------------------------------------------------------

    async def verify(self, token: str) -> Claims:
        """The claims of a valid access token of this issuer; ``InvalidTokenError`` otherwise."""
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            if now <= cached.exp + self.leeway:
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
            raise InvalidTokenError("token expired")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("malformed token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidTokenError("algorithm not allowed")
        if "typ" in header and header["typ"] not in ACCESS_TOKEN_TYPES:
            raise InvalidTokenError("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("missing kid")
        key = await self._key(kid)
        if not key.fits(alg):
            raise InvalidTokenError("algorithm does not fit the key")
        payload = decode_signed(
            token, key.jwk.key, alg, self.audience, self.issuer, REQUIRED_CLAIMS
        )
        claims = self._claims(payload, now)
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    def _claims(self, payload: dict[str, Any], now: float) -> Claims:
        if payload.get("iss") != self.issuer:
            raise InvalidTokenError("wrong issuer")
        if payload.get("typ") == "ID" or "nonce" in payload:
            raise InvalidTokenError("an ID token is not an access token")
        exp, iat = check_times(payload, now, self.leeway)
        sub = payload["sub"]
        if not isinstance(sub, str) or not sub:
            raise InvalidTokenError("malformed claims")
        client_id = payload.get("client_id", payload.get("azp", ""))
        scope = payload.get("scope", "")
        amr = payload.get("amr", [])
        cnf = payload.get("cnf")
        jti = payload.get("jti", "")
        if not (
            isinstance(client_id, str)
            and isinstance(scope, str)
            and isinstance(jti, str)
            and isinstance(amr, list)
            and all(isinstance(a, str) for a in amr)
            and (cnf is None or isinstance(cnf, dict))
        ):
            raise InvalidTokenError("malformed claims")
        roles = self._roles(payload)
        subject = subject_of(self.issuer, sub)
        raw: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "external_sub": sub,
            "aud": payload["aud"],
            "exp": exp,
            "iat": iat,
            "jti": jti,
            "client_id": client_id,
            "scope": scope,
            "roles": sorted(roles),
            "amr": list(amr),
        }
        if cnf is not None:
            raw["cnf"] = cnf
        return Claims(
            sub=subject,
            client_id=client_id,
            scope=frozenset(scope.split()),
            roles=roles,
            amr=tuple(amr),
            exp=float(exp),
            iat=float(iat),
            jti=jti,
            cnf=types.MappingProxyType(cnf) if cnf is not None else None,
            raw=types.MappingProxyType(raw),
        )

    def _roles(self, payload: Mapping[str, Any]) -> frozenset[str]:
        if not self.roles_claim:
            return frozenset()
        found = claim_at(payload, self.roles_claim)
        if isinstance(found, str):
            found = found.split()
        if not isinstance(found, list):
            return frozenset()
        return frozenset(r for r in found if isinstance(r, str) and r in MAPPED_ROLES)

    # -- keys -------------------------------------------------------------------------------

    async def _key(self, kid: str) -> _Key:
        stale = self._monotonic() - self._fetched_at > self.max_key_age
        if kid not in self._keys or stale:
            await self.refresh()
        key = self._keys.get(kid)
        if key is None:
            raise InvalidTokenError("unknown signing key")
        return key

    async def refresh(self, *, force: bool = False) -> None:
        """Re-read discovery and JWKS, unless tried less than ``refetch_interval`` s ago.

        Concurrent callers share one read. A failed read keeps the keys known so far.
        """
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return
        if not force and self._monotonic() - self._tried_at < self.refetch_interval:
            return
        self._tried_at = self._monotonic()
        self._inflight = asyncio.create_task(self._fetch())
        try:
            await asyncio.shield(self._inflight)
        finally:
            self._inflight = None

    async def _fetch(self) -> None:
        try:
            discovery = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if discovery.get("issuer") != self.issuer:
                log.error("external_oidc_refused", reason="issuer_mismatch", issuer=self.issuer)
                self._keys = {}
                return
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
                log.error("external_oidc_refused", reason="jwks_uri", issuer=self.issuer)
                self._keys = {}
                return
            jwks = await self._get_json(jwks_uri)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            log.warning("external_oidc_unreachable", issuer=self.issuer, error=type(exc).__name__)
            return
        self._keys = self._parse_jwks(jwks)
        self._fetched_at = self._monotonic()
        log.info("external_oidc_keys", issuer=self.issuer, keys=sorted(self._keys))

    def _parse_jwks(self, jwks: Mapping[str, Any]) -> dict[str, _Key]:
        keys: dict[str, _Key] = {}
        entries = jwks.get("keys")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            kid, kty = entry.get("kid"), entry.get("kty")
            if not isinstance(kid, str) or kty not in ("RSA", "EC") or kid in keys:
                continue
            if "d" in entry:  # a private key published by mistake: trust nothing of it
                continue
            declared = entry.get("alg")
            if declared is not None and declared not in ALGORITHMS:
                continue
            try:
                keys[kid] = _Key(jwt.PyJWK(entry), kty, entry.get("crv"), declared)
            except (jwt.PyJWTError, ValueError, TypeError):
                log.warning("external_oidc_key_skipped", kid=kid)
        return keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        self.fetches += 1
        session = self._client()
        async with session.get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            if (response.content_length or 0) > MAX_DOCUMENT:
                raise ValueError("document too large")
            body = await response.content.read(MAX_DOCUMENT + 1)
            if len(body) > MAX_DOCUMENT:
                raise ValueError("document too large")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        return document

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ctx = ssl.create_default_context(
                cafile=str(self._ca_file) if self._ca_file is not None else None
            )
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ctx, limit=4),
                timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT),
            )
        return self._session

    def known_kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
