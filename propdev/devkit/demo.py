"""The demo estate: two sites (Riverside Park: building A, two doors and the parking barrier;
Harbour View: building B, two doors) of partner ``simulator``; three residents with different
rights and households (Anna owns A-12, where Vera is a member; Boris owns B-34); staff with
TOTP: the organisation-wide admin ``operator`` (the v1 key), an operator scoped to each site,
an organisation-wide auditor.

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
from propdev.storage import Database, migrate, run
from propdev.storage.directory import AccessPoint, Directory

MOBILE_CLIENT_ID = "propdev-mobile"
MOBILE_REDIRECT_URI = "com.propdev.app:/oauth/callback"
CONSOLE_CLIENT_ID = "propdev-console"  # the supervision console (/admin/), a browser page
PARTNER = "simulator"
LOOPBACK = ["127.0.0.0/8", "::1/128"]

SITE = ("site-riverside", "Riverside Park")
SITES = [SITE, ("site-harbour", "Harbour View")]
BUILDINGS = [("bld-a", "Building A", SITE[0]), ("bld-b", "Building B", "site-harbour")]
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
# username, full name, roles, site ids (None: the organisation); the first is ``OPERATOR``.
STAFF = [
    (OPERATOR, "Duty operator", ["admin"], None),
    ("riverside-operator", "Riverside operator", ["operator"], ["site-riverside"]),
    ("harbour-operator", "Harbour operator", ["operator"], ["site-harbour"]),
    ("auditor", "Portfolio auditor", ["auditor"], None),
]
# member -> the owner whose apartment they share (the others own theirs)
HOUSEHOLD_MEMBERS = {"vera": "anna"}


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


async def _seed_staff(
    db: Database,
    previous: dict[str, Any],
    username: str,
    full_name: str,
    roles: list[str],
    site_ids: list[str] | None,
) -> dict[str, Any]:
    """A staff account with its password and TOTP seed (kept from ``previous``), its roles and
    its sites as the demo says (set again on every run)."""
    password = previous.get("password") or secrets.token_urlsafe(12)
    existed = await _user_exists(db, username)
    totp_secret = previous.get("totp_secret") or pyotp.random_base32()
    user_id = await create_user(
        db,
        username=username,
        password=password,
        roles=roles,
        full_name=full_name,
        totp_secret=totp_secret,
    )
    if existed and previous.get("password") != password:
        await set_password(db, user_id, password)
    await set_totp_secret(db, user_id, totp_secret)
    await db.execute("UPDATE users SET roles = :r WHERE id = :id", r=",".join(roles), id=user_id)
    async with db.transaction() as conn:
        await run(conn, "DELETE FROM staff WHERE user_id = :id", id=user_id)
        await run(
            conn,
            "INSERT INTO staff (user_id, site_ids, created_at) VALUES (:id, :s, :t)",
            id=user_id,
            s=None if site_ids is None else json.dumps(site_ids),
            t=time.time(),
        )
    return {
        "id": user_id,
        "username": username,
        "password": password,
        "totp_secret": totp_secret,
        "roles": roles,
        "site_ids": site_ids,
    }


async def _seed_households(db: Database, users: dict[str, str]) -> dict[str, str]:
    """Members live in their owner's apartment (``HOUSEHOLD_MEMBERS``); username -> role."""
    roles = {}
    for member, owner in HOUSEHOLD_MEMBERS.items():
        member_id, owner_id = users.get(member), users.get(owner)
        if member_id is None or owner_id is None:
            continue
        found = await db.fetch_one(
            "SELECT apartment_id FROM residencies WHERE user_id = :u", u=owner_id
        )
        if found is None or found["apartment_id"] is None:
            continue
        async with db.transaction() as conn:
            moved = await run(
                conn,
                "UPDATE residencies SET apartment_id = :a, household_role = 'member',"
                " invited_by = :o WHERE user_id = :u AND moved_out_at IS NULL RETURNING user_id",
                a=found["apartment_id"],
                o=owner_id,
                u=member_id,
            )
            if not moved and not await run(
                conn, "SELECT 1 AS x FROM residencies WHERE user_id = :u", u=member_id
            ):
                await run(
                    conn,
                    "INSERT INTO residencies (user_id, apartment_id, since, household_role,"
                    " invited_by) VALUES (:u, :a, :t, 'member', :o)",
                    u=member_id,
                    a=found["apartment_id"],
                    t=time.time(),
                    o=owner_id,
                )
        roles[member] = "member"
    return roles


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
        for site_id, site_name in SITES:
            await directory.put_site(site_id, site_name)
        sites_of = {building_id: site for building_id, _, site in BUILDINGS}
        for building_id, name, site_id in BUILDINGS:
            await directory.put_building(building_id, site_id, name)
        await register_partner(settings, db, PARTNER, LOOPBACK)
        devices = {d.device_id for d in DEFAULT_DEVICES}
        for ap_id, name, kind, building, device_id in ACCESS_POINTS:
            assert device_id in devices, device_id
            await directory.put_access_point(
                AccessPoint(ap_id, name, kind, sites_of[building], building, PARTNER, device_id)
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
        old_staff = {str(o["username"]): o for o in previous.get("operators", [])}
        old_staff.setdefault(OPERATOR, old_operator)
        operators = [await _seed_staff(db, old_staff.get(spec[0]) or {}, *spec) for spec in STAFF]
        admin = operators[0]
        operator_id = str(admin["id"])
        # Kept across runs like the password; storing the same set again changes nothing
        # (a code used already stays used).
        recovery_codes = old_operator.get("recovery_codes") or new_recovery_codes()
        await store_recovery_codes(db, operator_id, recovery_codes)
        users = {str(r["username"]): str(r["id"]) for r in residents}
        await seed_utilities(db, users, now=time.time())  # apartments, accounts, meters
        roles = await _seed_households(db, users)
        for resident in residents:
            resident["household_role"] = roles.get(str(resident["username"]), "owner")
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
                "password": admin["password"],
                "totp_secret": admin["totp_secret"],
                "recovery_codes": recovery_codes,
            },
            "operators": operators,
            "sites": [{"id": site_id, "name": name} for site_id, name in SITES],
            "access_points": [
                {
                    "id": ap_id,
                    "name": name,
                    "kind": kind,
                    "device_id": device_id,
                    "partner": PARTNER,
                    "site_id": sites_of[building],
                }
                for ap_id, name, kind, building, device_id in ACCESS_POINTS
            ],
            "partner_sim_url": settings.partner_url or settings.public_url,
        }
        _write_private(settings.credentials_path, credentials)
        return credentials
    finally:
        if own:
            await db.close()
