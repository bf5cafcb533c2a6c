"""The demo estate: one site, two buildings, four doors and a barrier of partner ``simulator``,
three residents with different rights, one operator with TOTP.

Idempotent: credentials generated on the first run are kept in ``demo-credentials.json`` and
reused, so seeding again (even while nodes run) changes nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pyotp

from propdev.config import Settings
from propdev.devkit.housing_estate import seed_utilities
from propdev.devkit.vendor_sim.state import DEFAULT_DEVICES
from propdev.pki import ca_paths, ensure_ca, issue_partner_cert, partner_subject_dn
from propdev.security import (
    WEB_APP_CLIENT_ID,
    create_user,
    new_recovery_codes,
    open_vault,
    register_partner_client,
    register_public_client,
    register_web_app_client,
    set_password,
    set_totp_secret,
    store_recovery_codes,
    web_app_redirect_uri,
)
from propdev.storage import Database, migrate
from propdev.storage.directory import AccessPoint, Directory

MOBILE_CLIENT_ID = "propdev-mobile"
MOBILE_REDIRECT_URI = "com.propdev.app:/oauth/callback"
CONSOLE_CLIENT_ID = "propdev-console"  # the supervision console (/admin/), a browser page
PARTNER = "simulator"
LOOPBACK = ["127.0.0.0/8", "::1/128"]

SITE = ("site-riverside", "Riverside Park")
BUILDINGS = [("bld-a", "Building A"), ("bld-b", "Building B")]
# access point id, name, kind, building, partner's device id
ACCESS_POINTS = [
    ("ap-a-entrance", "Building A, main entrance", "door", "bld-a", "sim-door-1"),
    ("ap-a-courtyard", "Building A, courtyard gate", "door", "bld-a", "sim-door-2"),
    ("ap-b-entrance", "Building B, main entrance", "door", "bld-b", "sim-door-3"),
    ("ap-b-courtyard", "Building B, courtyard gate", "door", "bld-b", "sim-door-4"),
    ("ap-parking", "Underground parking barrier", "barrier", "bld-a", "sim-barrier-1"),
]
RESIDENTS = [
    ("anna", "Anna Smirnova", "+79990000001", ["ap-a-entrance", "ap-a-courtyard", "ap-parking"]),
    ("boris", "Boris Ivanov", "+79990000002", ["ap-b-entrance", "ap-b-courtyard", "ap-parking"]),
    ("vera", "Vera Petrova", "+79990000003", ["ap-a-entrance"]),
]
OPERATOR = "operator"


def _load_previous(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


async def _user_exists(db: Database, username: str) -> bool:
    return await db.fetch_one("SELECT id FROM users WHERE username = :u", u=username) is not None


async def register_partner(
    settings: Settings,
    db: Database,
    name: str,
    allowed_cidrs: list[str],
    *,
    adapter: str | None = None,
    base_url: str | None = None,
) -> Path:
    """Issue partner ``name``'s client certificate and register it as an OAuth client.

    ``adapter`` names its vendor protocol (``simulator``, ``acme``, ``vendor``; the node builds
    a gateway for the ones it knows at start); ``base_url`` is where its API is, when not at
    ``PROPDEV_PARTNER_URL``.
    """
    paths = issue_partner_cert(settings.pki_dir, name)
    await register_partner_client(
        db, name, subject_dn=partner_subject_dn(name), allowed_cidrs=allowed_cidrs
    )
    adapter = adapter or ("simulator" if name == PARTNER else "vendor")
    await Directory(db).put_partner(name, name, adapter, allowed_cidrs, base_url=base_url)
    return paths.cert


async def seed_demo(settings: Settings, db: Database | None = None) -> dict[str, Any]:
    """Create the demo estate (idempotently) and return what was written to the credentials file."""
    own = db is None
    db = db or Database(settings.database_url)
    try:
        await migrate(db)
        await open_vault(settings, db)
        ensure_ca(settings.pki_dir)
        previous = _load_previous(settings.credentials_path)
        old_passwords = {r["username"]: r["password"] for r in previous.get("residents", [])}
        old_operator = previous.get("operator") or {}

        directory = Directory(db)
        await directory.put_site(*SITE)
        for building_id, name in BUILDINGS:
            await directory.put_building(building_id, SITE[0], name)
        await register_partner(settings, db, PARTNER, LOOPBACK)
        devices = {d.device_id for d in DEFAULT_DEVICES}
        for ap_id, name, kind, building, device_id in ACCESS_POINTS:
            assert device_id in devices, device_id
            await directory.put_access_point(
                AccessPoint(ap_id, name, kind, SITE[0], building, PARTNER, device_id)
            )
        await register_public_client(
            db,
            MOBILE_CLIENT_ID,
            client_name="propdev mobile app",
            redirect_uris=[MOBILE_REDIRECT_URI],
            scope="openid profile phone api",
        )
        await register_public_client(
            db,
            CONSOLE_CLIENT_ID,
            client_name="propdev supervision console",
            redirect_uris=[settings.public_url.rstrip("/") + "/admin/"],
            scope="openid profile api",
        )
        await register_web_app_client(db, settings.public_url)  # also at every node's start
        residents = []
        for username, full_name, phone, rights in RESIDENTS:
            password = old_passwords.get(username) or secrets.token_urlsafe(12)
            existed = await _user_exists(db, username)
            user_id = await create_user(
                db,
                username=username,
                password=password,
                roles=["resident"],
                full_name=full_name,
                phone=phone,
            )
            if existed and old_passwords.get(username) != password:
                await set_password(db, user_id, password)  # the file must tell the truth
            for ap_id in rights:
                await directory.grant(user_id, ap_id)
            residents.append(
                {
                    "id": user_id,
                    "username": username,
                    "password": password,
                    "access_point_ids": rights,
                    "full_name": full_name,
                    "phone": phone,
                }
            )
        op_password = old_operator.get("password") or secrets.token_urlsafe(12)
        op_existed = await _user_exists(db, OPERATOR)
        totp_secret = old_operator.get("totp_secret") or pyotp.random_base32()
        operator_id = await create_user(
            db,
            username=OPERATOR,
            password=op_password,
            roles=["operator"],
            full_name="Duty operator",
            totp_secret=totp_secret,
        )
        if op_existed and old_operator.get("password") != op_password:
            await set_password(db, operator_id, op_password)
        await set_totp_secret(db, operator_id, totp_secret)
        # Kept across runs like the password; storing the same set again changes nothing
        # (a code used already stays used).
        recovery_codes = old_operator.get("recovery_codes") or new_recovery_codes()
        await store_recovery_codes(db, operator_id, recovery_codes)
        users = {str(r["username"]): str(r["id"]) for r in residents}
        await seed_utilities(db, users, now=time.time())  # apartments, accounts, meters
        credentials = {
            "ca_cert": str(ca_paths(settings.pki_dir).cert.resolve()),
            "base_url": settings.public_url,
            "mobile_client_id": MOBILE_CLIENT_ID,
            "redirect_uri": MOBILE_REDIRECT_URI,
            "console_client_id": CONSOLE_CLIENT_ID,
            "web_app_client_id": WEB_APP_CLIENT_ID,
            "web_app_url": web_app_redirect_uri(settings.public_url),
            "residents": residents,
            "operator": {
                "id": operator_id,
                "username": OPERATOR,
                "password": op_password,
                "totp_secret": totp_secret,
                "recovery_codes": recovery_codes,
            },
            "access_points": [
                {
                    "id": ap_id,
                    "name": name,
                    "kind": kind,
                    "device_id": device_id,
                    "partner": PARTNER,
                }
                for ap_id, name, kind, _, device_id in ACCESS_POINTS
            ],
            "partner_sim_url": settings.partner_url or settings.public_url,
        }
        _write_private(settings.credentials_path, credentials)
        return credentials
    finally:
        if own:
            await db.close()
