"""A tiny OIDC provider for tests: discovery + JWKS over TLS (a certificate from the project
CA), and tokens signed with its own RSA key. It counts every request it serves."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from propdev.pki import ca_paths, ensure_ca, ensure_server_cert, server_context


@dataclass
class FakeIdP:
    """What the test controls: the issuer it advertises, its keys, the request counters."""

    issuer: str = ""
    advertised_issuer: str | None = None  # None: the real one; set to lie in discovery
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = field(default_factory=lambda: secrets.token_hex(8))
    ca_file: Path = Path()
    discovery_hits: int = 0
    jwks_hits: int = 0

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update(kid=self.kid, use="sig")
        return {"keys": [jwk]}

    def token(
        self,
        audience: str,
        *,
        sub: str = "user-1",
        alg: str = "RS256",
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience,
            "exp": now + 300,
            "iat": now,
            "jti": secrets.token_hex(8),
            "azp": "console",
            "typ": "Bearer",
        }
        payload.update(claims)
        return jwt.encode(
            {k: v for k, v in payload.items() if v is not None},
            self.key,
            algorithm=alg,
            headers={"kid": kid or self.kid, "typ": "JWT", **(headers or {})},
        )


@asynccontextmanager
async def serve_idp(pki_dir: Path, *, realm: str = "/realms/propdev") -> AsyncIterator[FakeIdP]:
    """Run the provider on 127.0.0.1 over TLS until the block ends."""
    ensure_ca(pki_dir)
    cert = ensure_server_cert(pki_dir, ("127.0.0.1",), name="fake-idp")
    idp = FakeIdP(ca_file=ca_paths(pki_dir).cert)

    async def discovery(request: web.Request) -> web.Response:
        idp.discovery_hits += 1
        issuer = idp.advertised_issuer if idp.advertised_issuer is not None else idp.issuer
        return web.json_response(
            {
                "issuer": issuer,
                "jwks_uri": f"{idp.issuer}/protocol/openid-connect/certs",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def certs(request: web.Request) -> web.Response:
        idp.jwks_hits += 1
        return web.json_response(idp.jwks())

    app = web.Application()
    app.router.add_get(f"{realm}/.well-known/openid-configuration", discovery)
    app.router.add_get(f"{realm}/protocol/openid-connect/certs", certs)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(pki_dir, cert))
    await site.start()
    port = runner.addresses[0][1]
    idp.issuer = f"https://127.0.0.1:{port}{realm}"
    try:
        yield idp
    finally:
        await runner.cleanup()
