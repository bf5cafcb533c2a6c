"""A partner calling our node as a vendor does: mTLS with its certificate, a bound
``client_credentials`` token, signed batches to ``/partner/v1/events``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from propdev.partners.signing import sign, webhook_secret
from propdev.pki import CertPaths, client_context, partner_paths


def event(device_id: str, type: str, *, ago: float = 0.0, **fields: Any) -> dict[str, Any]:
    """One partner event with a fresh id, ``ago`` seconds in the past."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago)
    return {
        "event_id": uuid.uuid4().hex,
        "device_id": device_id,
        "type": type,
        "occurred_at": at.isoformat(),
        **fields,
    }


class PartnerClient:
    """``http`` presents ``cert`` (or none) on every connection."""

    def __init__(
        self, http: aiohttp.ClientSession, url: str, data_dir: Path, partner_id: str
    ) -> None:
        self.http = http
        self.url = url
        self.data_dir = data_dir
        self.partner_id = partner_id

    async def token(self, client_id: str | None = None) -> str:
        form = {"grant_type": "client_credentials", "client_id": client_id or self.partner_id}
        async with self.http.post(f"{self.url}/oauth/token", data=form) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            return str(body["access_token"])

    async def post(
        self,
        events: list[dict[str, Any]],
        *,
        token: str | None,
        secret: str | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        body = raw if raw is not None else json.dumps({"events": events}).encode()
        key = secret or webhook_secret(self.data_dir, self.partner_id)
        headers = {"Content-Type": "application/json", **sign(key, uuid.uuid4().hex, body)}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.post(
            f"{self.url}/partner/v1/events", data=body, headers=headers
        ) as resp:
            return resp.status, await resp.json(content_type=None)


@contextlib.asynccontextmanager
async def partner_client(
    url: str,
    data_dir: Path,
    partner_id: str,
    *,
    cert: CertPaths | bool | None = True,
    keep_alive: bool = False,
) -> AsyncIterator[PartnerClient]:
    """A client of partner ``partner_id``; ``cert`` True uses its own certificate from the data
    dir, False none, or the given paths (another partner's). ``keep_alive``: every request on
    one connection (one TLS handshake)."""
    pki = data_dir / "pki"
    paths = partner_paths(pki, partner_id) if cert is True else (cert or None)
    connector = aiohttp.TCPConnector(
        ssl=client_context(pki, paths), force_close=not keep_alive, limit=1 if keep_alive else 100
    )
    async with aiohttp.ClientSession(connector=connector) as http:
        yield PartnerClient(http, url, data_dir, partner_id)


ACME = "acme"
ACME_DOOR = "ap-acme-door"
ACME_DEVICE = "LK-7F3A-0001"


async def add_acme_door(settings: Any, *, residents: tuple[str, ...] = ("anna",)) -> None:
    """Seed the demo estate, then partner ``acme`` (adapter ``acme``) with one door of its
    own device ids, which ``residents`` may open. Do it before the node starts."""
    from propdev.devkit import SITE, register_partner, seed_demo
    from propdev.storage import Database
    from propdev.storage.directory import AccessPoint, Directory

    credentials = await seed_demo(settings)
    db = Database(settings.database_url)
    try:
        await register_partner(settings, db, ACME, ["127.0.0.0/8", "::1/128"], adapter=ACME)
        directory = Directory(db)
        await directory.put_access_point(
            AccessPoint(ACME_DOOR, "Acme service door", "door", SITE[0], "bld-a", ACME, ACME_DEVICE)
        )
        for resident in credentials["residents"]:
            if resident["username"] in residents:
                await directory.grant(resident["id"], ACME_DOOR)
    finally:
        await db.close()
