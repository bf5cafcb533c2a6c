"""``run.py pki revoke-partner NAME``, ``run.py keys rotate|status|rotate-signing|signing``
and ``run.py totp recovery-codes USERNAME``; ``cli_audit``, the audit entry of a command that
changes partners, keys or credentials (actor ``cli``: ``partner.revoke``, ``data_key.rotate``,
``signing_key.rotate``, ``auth.recovery_codes``...), appended before the change: a store that
cannot take it stops the command, nothing changed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time

from cryptography.hazmat.primitives import serialization
from redis.exceptions import RedisError

from propdev.config import Settings
from propdev.pki.ca import existing_partner_cert, load_cert
from propdev.pki.crl import crl_path, revoke_partner
from propdev.pki.errors import UnknownPartnerError
from propdev.registry import CERTIFICATE, BusUnavailableError, announce
from propdev.security.crypto import open_vault
from propdev.security.keys import SigningKeys
from propdev.security.personal import count_stale, reencrypt, seal_clear_rows
from propdev.security.recovery import COUNT, new_recovery_codes, store_recovery_codes
from propdev.security.tokens import certificate_thumbprint
from propdev.security.users import normalize_username
from propdev.storage import Database, migrate
from propdev.storage.audit import AuditLog, AuditRecord

CLI = "cli"  # the audit actor of a command run on a node's host (no person is known)
DATA_KEY_ROTATE = "data_key.rotate"
SIGNING_KEY_ROTATE = "signing_key.rotate"


async def cli_audit(
    settings: Settings, action: str, *, reason: str, subject: str | None = None
) -> None:
    """Append the entry of a CLI change (``partner.issue``, ``partner.revoke``...)."""
    db = Database(settings.database_url)
    try:
        await migrate(db)
        await append_cli(db, action, reason=reason, subject=subject)
    finally:
        await db.close()


async def append_cli(db: Database, action: str, *, reason: str, subject: str | None = None) -> None:
    await AuditLog(db).append(
        AuditRecord(
            at=time.time(),
            actor=CLI,
            action=action,
            access_point_id=None,
            decision="granted",
            reason=reason,
            subject=subject,
        )
    )


def revoke_partner_command(settings: Settings, name: str) -> int:
    """Revoke partner ``name``'s certificate; running nodes pick the CRL up within seconds
    (file watch) or at once on SIGHUP. In a cluster (``PROPDEV_REDIS_URL`` or
    ``PROPDEV_REDIS_SENTINELS``) the revocation is also announced on the bus: every node refuses
    the tokens bound to the certificate at once, on connections it had already accepted too."""
    try:
        cert = load_cert(existing_partner_cert(settings.pki_dir, name).cert)
        asyncio.run(
            cli_audit(
                settings, "partner.revoke", reason=f"partner={name} serial={cert.serial_number:x}"
            )
        )
        serial = revoke_partner(settings.pki_dir, name)
    except UnknownPartnerError:
        print(json.dumps({"error": f"no certificate for partner {name!r}"}))
        return 1
    announced = False
    if settings.clustered:
        thumbprint = certificate_thumbprint(cert.public_bytes(serialization.Encoding.DER))
        until = cert.not_valid_after_utc.timestamp()
        try:
            asyncio.run(announce(settings, CERTIFICATE, thumbprint, until))
            announced = True
        except (BusUnavailableError, RedisError, OSError) as exc:
            print(json.dumps({"warning": f"not announced to the cluster: {exc}"}))
    print(
        json.dumps(
            {
                "partner": name,
                "revoked_serial": f"{serial:x}",
                "crl": str(crl_path(settings.pki_dir)),
                "announced": announced,
            }
        )
    )
    return 0


async def keys_command(settings: Settings, action: str) -> int:
    db = Database(settings.database_url)
    try:
        await migrate(db)
        vault = await open_vault(settings, db)
        await seal_clear_rows(db, vault)
        if action == "rotate":
            # Audited before the change (fail closed): a store that cannot take it stops here.
            await append_cli(db, DATA_KEY_ROTATE, reason=f"previous={vault.primary_kid}")
            kid = await asyncio.to_thread(vault.rotate)
            changed = await asyncio.to_thread(reencrypt, db, vault)
            print(
                json.dumps(
                    {
                        "primary": kid,
                        "rows_reencrypted": changed,
                        "values": await count_stale(db, vault),
                    }
                )
            )
        else:
            print(
                json.dumps(
                    {
                        "primary": vault.primary_kid,
                        "keys": vault.kids(),
                        "values": await count_stale(db, vault),
                    }
                )
            )
    finally:
        await db.close()
    return 0


async def recovery_codes_command(settings: Settings, username: str) -> int:
    """Give ``username`` (an account with TOTP) ten new recovery codes, replacing any earlier
    set, and print them: the only time they are shown."""
    db = Database(settings.database_url)
    try:
        await migrate(db)
        await open_vault(settings, db)
        name = normalize_username(username)
        row = await db.fetch_one("SELECT id, totp_secret FROM users WHERE username = :u", u=name)
        if row is None or not row["totp_secret"]:
            print(json.dumps({"error": f"no account {name!r} with TOTP enrolled"}))
            return 1
        codes = new_recovery_codes(COUNT)
        await append_cli(  # never the codes
            db, "auth.recovery_codes", reason=f"count={COUNT}", subject=str(row["id"])
        )
        await store_recovery_codes(db, str(row["id"]), codes)
    finally:
        await db.close()
    print(
        json.dumps(
            {
                "username": name,
                "recovery_codes": codes,
                "note": "shown once: each code signs in once in place of a TOTP code",
            }
        )
    )
    return 0


def signing_keys_command(settings: Settings, action: str, retire_old: bool) -> int:
    """``rotate-signing``: a new token-signing key, which signs from now on (each node picks it
    up within seconds: ``SigningKeys.watch``); the older keys stay in the JWKS until their
    overlap has passed (then any node or this command retires them) or, with
    ``retire_old``, leave it at once. ``signing``: the keys and their retirement times."""
    keys = SigningKeys.load_or_create(settings.pki_dir / "jwt")
    retired: list[str] = []
    if action == "rotate-signing":
        reason = f"previous={keys.signing_key.kid} retire_old={str(retire_old).lower()}"
        asyncio.run(cli_audit(settings, SIGNING_KEY_ROTATE, reason=reason))  # before: fail closed
        keys.rotate()
        retired = keys.retire_all_but_signing() if retire_old else keys.retire_expired(time.time())
    retires = {
        kid: dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")
        for kid, at in keys.retirement_times().items()
    }
    print(
        json.dumps(
            {
                "signing": keys.signing_key.kid,
                "published": keys.kids(),
                "retired": retired,
                "retires_at": retires,
            }
        )
    )
    return 0
