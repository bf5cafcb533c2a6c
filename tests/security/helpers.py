"""What an attacker does by hand: raw TLS sockets, tokens minted or forged with known keys."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import ssl
import time
from typing import Any

import jwt

from propdev.security import SigningKeys
from tests.e2e.conftest import RunningNode


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(node: RunningNode, sub: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": node.settings.public_url,
        "sub": sub,
        "aud": node.settings.audience,
        "exp": now + 300,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "client_id": node.credentials["mobile_client_id"],
        "scope": "openid api",
        "roles": ["resident"],
        "amr": ["pwd"],
    }
    claims.update(extra)
    return claims


def mint(node: RunningNode, claims: dict[str, Any], *, typ: str = "at+jwt") -> str:
    """A token signed with the node's real key: what an insider with the key file could do."""
    key = SigningKeys.load_or_create(node.settings.pki_dir / "jwt").signing_key
    return jwt.encode(
        claims, key.private_key, algorithm="PS256", headers={"typ": typ, "kid": key.kid}
    )


def unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), ""])


async def raw_tls(
    node: RunningNode, ctx: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        node.settings.host, node.settings.port, ssl=ctx, server_hostname="127.0.0.1"
    )


async def read_all(reader: asyncio.StreamReader, limit: float = 10.0) -> bytes:
    """Everything until the server closes (or ``limit`` seconds)."""
    chunks = []
    try:
        async with asyncio.timeout(limit):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except (TimeoutError, ConnectionError, ssl.SSLError):
        pass
    return b"".join(chunks)


async def sim_commands(node: RunningNode) -> list[dict[str, Any]]:
    async with node.http.get(f"{node.url}/sim/v1/commands") as resp:
        assert resp.status == 200
        return list(await resp.json())
