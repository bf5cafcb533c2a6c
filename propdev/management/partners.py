"""The partner registry: vendors as rows of the store, changed through the admin API.

A partner (``partners`` row) has a name (its OAuth client id and certificate CN), an adapter
(a name of ``propdev.partners.plugins``), the base URL of its API (HTTPS only), the credential
we present to it (an API key or OAuth client credentials, sealed: never answered), the CA its
server certificate chains to (none: the system store), the networks it calls us from, its rate
limit, bulkhead and breaker settings, and the secret(s) its webhooks are signed with: the
current one and, for ``SECRET_OVERLAP`` seconds after a rotation, the previous one.

Every change is one transaction with its audit entry (``partner.create``, ``partner.change``,
``partner.delete``, ``partner.certificate``, ``partner.webhook_secret``), then announced with
``announce(name)`` (the node publishes it on the bus; every node applies it). A deleted partner
keeps its row (access points and history name it) with ``removed_at`` set; its OAuth client is
gone and its certificates are revoked. Bad input is ``PartnerRequestError`` (400), nothing stored.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import propdev.management.partner_fields as fields
from propdev.management.changes import details, record
from propdev.management.errors import ConflictError, UnknownObjectError
from propdev.partners import Credential
from propdev.pki import CsrRejectedError, partner_subject_dn, revoke_serials, sign_partner_csr
from propdev.security import PARTNER_CLIENT_UPSERT, partner_client_params, vault_of
from propdev.storage import Database, run

SECRET_OVERLAP = 24 * 3600.0  # the previous webhook secret is accepted this long
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FIELDS = (
    "adapter",
    "base_url",
    "allow_ips",
    "server_ca_pem",
    "api_key",
    "oauth",
    "rate_limit",
    "bulkhead",
    "breaker_failures",
    "breaker_reset",
    "timeout",
)
_COLUMNS = (
    "id, adapter, base_url, allowed_cidrs, server_ca_pem, rate_limit, bulkhead, "
    "breaker_failures, breaker_reset, timeout, version, created_at, updated_at, removed_at, "
    "credential_sealed, webhook_secret_sealed, previous_secret_sealed, previous_secret_until"
)

Announce = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PartnerRecord:
    """A partner as every node applies it; its secrets opened (never answered by the API)."""

    name: str
    adapter: str
    base_url: str | None
    allowed_cidrs: tuple[str, ...]
    server_ca_pem: str | None
    rate_limit: float | None
    bulkhead: int | None
    breaker_failures: int | None
    breaker_reset: float | None
    timeout: float | None
    version: int
    credential: Credential | None
    webhook_secrets: tuple[tuple[str, float | None], ...]  # (secret, accepted until or None)

    def secrets_at(self, now: float) -> list[str]:
        """The webhook secrets a signature may be made with at ``now``: current, previous."""
        return [s for s, until in self.webhook_secrets if until is None or now < until]


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class PartnerRegistry:
    """Create, read, change, delete partners; sign their CSRs; rotate their webhook secrets."""

    def __init__(
        self,
        db: Database,
        *,
        adapters: Callable[[], Collection[str]],
        pki_dir: Path,
        announce: Announce,
        certificate_days: int = 365,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self._adapters = adapters
        self._pki_dir = pki_dir
        self._announce = announce
        self.certificate_days = certificate_days
        self.clock = clock

    # -- sealing ------------------------------------------------------------------------------

    def _seal(self, value: str, column: str, name: str) -> str:
        return vault_of(self.db).seal(value, table="partners", column=column, row_id=name)

    def _sealed_credential(self, credential: Credential | None, name: str) -> str | None:
        if credential is None:
            return None
        return self._seal(fields.credential_json(credential), "credential", name)

    def _open(self, value: str, column: str, name: str) -> str:
        return vault_of(self.db).open(value, table="partners", column=column, row_id=name)

    # -- reads --------------------------------------------------------------------------------

    async def all(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch_all(
            f"SELECT {_COLUMNS} FROM partners WHERE removed_at IS NULL ORDER BY id"
        )
        return [self._public(row, await self._certificates(str(row["id"]))) for row in rows]

    async def get(self, name: str) -> dict[str, Any]:
        row = await self._row(name)
        return self._public(row, await self._certificates(name))

    async def _row(self, name: str) -> Mapping[str, Any]:
        row = await self.db.fetch_one(
            f"SELECT {_COLUMNS} FROM partners WHERE id = :id AND removed_at IS NULL", id=name
        )
        if row is None:
            raise UnknownObjectError("partner", name)
        return row

    async def _certificates(self, name: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch_all(
            "SELECT serial, not_before, not_after, revoked_at FROM partner_certificates "
            "WHERE partner_id = :p ORDER BY not_after",
            p=name,
        )
        return [
            {
                "serial": f"{int(r['serial']):x}",
                "not_before": r["not_before"],
                "not_after": r["not_after"],
                "revoked": r["revoked_at"] is not None,
            }
            for r in rows
        ]

    def _public(self, row: Mapping[str, Any], certificates: list[dict[str, Any]]) -> dict[str, Any]:
        """The partner as the API shows it: settings, never a secret."""
        credential = None
        if row["credential_sealed"]:
            kind = json.loads(self._open(row["credential_sealed"], "credential", row["id"]))["kind"]
            credential = "oauth" if kind == "oauth" else "api_key"
        until = row["previous_secret_until"]
        return {
            "name": row["id"],
            "client_id": row["id"],
            "adapter": row["adapter"],
            "base_url": row["base_url"],
            "allow_ips": json.loads(row["allowed_cidrs"] or "[]"),
            "server_ca": "pem" if row["server_ca_pem"] else "system",
            "credential": credential,
            "rate_limit": row["rate_limit"],
            "bulkhead": row["bulkhead"],
            "breaker_failures": row["breaker_failures"],
            "breaker_reset": row["breaker_reset"],
            "timeout": row["timeout"],
            "previous_webhook_secret_until": until if until and until > self.clock() else None,
            "certificates": certificates,
            "version": row["version"],
        }

    async def load(self, name: str) -> PartnerRecord | None:
        """The partner as a node applies it, secrets opened; None when there is none (or it
        was deleted)."""
        row = await self.db.fetch_one(
            f"SELECT {_COLUMNS} FROM partners WHERE id = :id AND removed_at IS NULL", id=name
        )
        return None if row is None else self._record(row)

    async def versions(self) -> dict[str, int]:
        """Every live partner's version (a node compares them with what it applied)."""
        rows = await self.db.fetch_all("SELECT id, version FROM partners WHERE removed_at IS NULL")
        return {str(r["id"]): int(r["version"]) for r in rows}

    def _record(self, row: Mapping[str, Any]) -> PartnerRecord:
        name = str(row["id"])
        webhook: list[tuple[str, float | None]] = []
        if row["webhook_secret_sealed"]:
            webhook.append((self._open(row["webhook_secret_sealed"], "webhook_secret", name), None))
        if row["previous_secret_sealed"] and row["previous_secret_until"]:
            previous = self._open(row["previous_secret_sealed"], "previous_secret", name)
            webhook.append((previous, float(row["previous_secret_until"])))
        credential = None
        if row["credential_sealed"]:
            credential = fields.credential_of(
                self._open(row["credential_sealed"], "credential", name)
            )
        return PartnerRecord(
            name=name,
            adapter=str(row["adapter"]),
            base_url=row["base_url"],
            allowed_cidrs=tuple(json.loads(row["allowed_cidrs"] or "[]")),
            server_ca_pem=row["server_ca_pem"],
            rate_limit=row["rate_limit"],
            bulkhead=row["bulkhead"],
            breaker_failures=row["breaker_failures"],
            breaker_reset=row["breaker_reset"],
            timeout=row["timeout"],
            version=int(row["version"]),
            credential=credential,
            webhook_secrets=tuple(webhook),
        )

    # -- changes ------------------------------------------------------------------------------

    def _settings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The columns ``body`` sets (only the fields it has), checked."""
        out: dict[str, Any] = {}
        if "adapter" in body:
            known = self._adapters()
            if body["adapter"] not in known:
                raise fields.error(
                    "adapter",
                    f"no adapter {body['adapter']!r}; registered: {', '.join(sorted(known))}",
                )
            out["adapter"] = body["adapter"]
        if "base_url" in body:
            out["base_url"] = fields.https_url(body["base_url"], "base_url")
        if "allow_ips" in body:
            out["allowed_cidrs"] = json.dumps(fields.cidrs(body["allow_ips"]))
        if "server_ca_pem" in body:
            out["server_ca_pem"] = fields.ca_pem(body["server_ca_pem"])
        for field, low, high, integer in (
            ("rate_limit", 0.01, 100_000, False),
            ("bulkhead", 1, 10_000, True),
            ("breaker_failures", 1, 1000, True),
            ("breaker_reset", 0.1, 3600, False),
            ("timeout", 0.1, 120, False),
        ):
            if field in body:
                out[field] = fields.number(body[field], field, low, high, integer=integer)
        return out

    def _check_body(self, body: object) -> Mapping[str, Any]:
        if not isinstance(body, dict):
            raise fields.error("body", "expected a JSON object")
        return body

    async def create(self, actor: str, body: object) -> dict[str, Any]:
        """Register a partner; answers its client id and webhook secret (shown only here)."""
        data = self._check_body(body)
        for field in data:
            if field not in ("name", *FIELDS):
                raise fields.error(str(field), "unknown field")
        name = data.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise fields.error("name", "expected 1 to 64 letters, digits, '_' or '-'")
        for required in ("adapter", "base_url", "allow_ips"):
            if required not in data:
                raise fields.error(required, "required")
        columns = {
            "server_ca_pem": None,
            "rate_limit": None,
            "bulkhead": None,
            "breaker_failures": None,
            "breaker_reset": None,
            "timeout": None,
            **self._settings(data),
        }
        credential = fields.credential(data)
        secret = new_webhook_secret()
        now = self.clock()
        columns |= {
            "credential_sealed": (
                self._seal(fields.credential_json(credential), "credential", name)
                if credential
                else None
            ),
            "webhook_secret_sealed": self._seal(secret, "webhook_secret", name),
            "previous_secret_sealed": None,
            "previous_secret_until": None,
            "updated_at": now,
        }
        async with self.db.transaction() as conn:
            rows = await run(conn, "SELECT removed_at FROM partners WHERE id = :id", id=name)
            if rows and rows[0]["removed_at"] is None:
                raise ConflictError(f"partner {name!r} exists", field="name")
            if rows:  # registered again after a delete: the same row, a new life
                sets = ", ".join(f"{c} = :{c}" for c in columns)
                await run(
                    conn,
                    f"UPDATE partners SET {sets}, removed_at = NULL, version = version + 1 "
                    "WHERE id = :id",
                    id=name,
                    **columns,
                )
            else:
                names = ", ".join(columns)
                values = ", ".join(f":{c}" for c in columns)
                await run(
                    conn,
                    f"INSERT INTO partners (id, name, created_at, {names}) "
                    f"VALUES (:id, :id, :now, {values})",
                    id=name,
                    now=now,
                    **columns,
                )
            await self._client(conn, name, json.loads(columns["allowed_cidrs"]))
            await self._audit(conn, actor, "partner.create", name)
        await self._announce(name)
        return {"name": name, "client_id": name, "webhook_secret": secret}

    async def _client(self, conn: Any, name: str, cidrs: list[str]) -> None:
        """Its OAuth client (``client_credentials``, ``tls_client_auth`` with its subject)."""
        params = partner_client_params(name, partner_subject_dn(name), cidrs)
        await run(conn, PARTNER_CLIENT_UPSERT, **params)

    async def _audit(self, conn: Any, actor: str, action: str, name: str, **more: object) -> None:
        await record(
            conn,
            self.db.dialect,
            actor=actor,
            action=action,
            reason=details(name=name, **more),
            at=self.clock(),
        )

    async def update(self, actor: str, name: str, body: object) -> dict[str, Any]:
        """Change some of its settings or its credential (PATCH: only the fields given)."""
        data = self._check_body(body)
        for field in data:
            if field not in FIELDS:
                raise fields.error(
                    str(field), "unknown field" if field != "name" else "cannot change"
                )
        await self._row(name)
        columns = self._settings(data)
        credential = fields.credential(data)
        if credential is not None:
            columns["credential_sealed"] = self._seal(
                fields.credential_json(credential), "credential", name
            )
        elif any(field in data and data[field] is None for field in ("api_key", "oauth")):
            columns["credential_sealed"] = None  # null: no credential any more
        if "base_url" in columns and columns["base_url"] is None:
            raise fields.error("base_url", "expected an https:// URL")
        if not columns:
            return await self.get(name)
        columns["updated_at"] = self.clock()
        async with self.db.transaction() as conn:
            sets = ", ".join(f"{c} = :{c}" for c in columns)
            changed = await run(
                conn,
                f"UPDATE partners SET {sets}, version = version + 1 "
                "WHERE id = :id AND removed_at IS NULL RETURNING allowed_cidrs",
                id=name,
                **columns,
            )
            if not changed:
                raise UnknownObjectError("partner", name)
            if "allowed_cidrs" in columns:
                await self._client(conn, name, json.loads(columns["allowed_cidrs"]))
            await self._audit(conn, actor, "partner.change", name, fields=",".join(sorted(data)))
        await self._announce(name)
        return await self.get(name)

    async def delete(self, actor: str, name: str) -> None:
        """Stop calling it and refuse its callbacks on every node; revoke its certificates."""
        now = self.clock()
        async with self.db.transaction() as conn:
            changed = await run(
                conn,
                "UPDATE partners SET removed_at = :now, updated_at = :now, "
                "version = version + 1, webhook_secret_sealed = NULL, "
                "previous_secret_sealed = NULL, credential_sealed = NULL "
                "WHERE id = :id AND removed_at IS NULL RETURNING id",
                id=name,
                now=now,
            )
            if not changed:
                raise UnknownObjectError("partner", name)
            await run(conn, "DELETE FROM oauth_clients WHERE client_id = :id", id=name)
            serials = await run(
                conn,
                "UPDATE partner_certificates SET revoked_at = :now "
                "WHERE partner_id = :id AND revoked_at IS NULL RETURNING serial",
                id=name,
                now=now,
            )
            if serials:
                revoke_serials(self._pki_dir, [int(r["serial"]) for r in serials])
            await self._audit(conn, actor, "partner.delete", name, revoked=len(serials))
        await self._announce(name)

    async def certificate(self, actor: str, name: str, body: object) -> dict[str, str]:
        """Sign its CSR: a client certificate for the key it keeps (a renewal while one is
        valid is fine: both stay valid until each expires or is revoked)."""
        data = self._check_body(body)
        for field in data:
            if field != "csr_pem":
                raise fields.error(str(field), "unknown field")
        csr_pem = data.get("csr_pem")
        if not isinstance(csr_pem, str) or len(csr_pem) > 20_000:
            raise fields.error("csr_pem", "expected a PEM certificate signing request")
        await self._row(name)
        try:
            signed = sign_partner_csr(
                self._pki_dir,
                name,
                csr_pem,
                days=self.certificate_days,
                now=dt.datetime.fromtimestamp(self.clock(), dt.UTC),
            )
        except CsrRejectedError as exc:
            raise fields.error("csr_pem", str(exc)) from None
        async with self.db.transaction() as conn:
            await run(
                conn,
                "INSERT INTO partner_certificates (serial, partner_id, not_before, not_after) "
                "VALUES (:s, :p, :b, :a)",
                s=str(signed.serial),
                p=name,
                b=signed.not_before.timestamp(),
                a=signed.not_after.timestamp(),
            )
            await self._audit(conn, actor, "partner.certificate", name, serial=f"{signed.serial:x}")
        return {"certificate_pem": signed.certificate_pem, "ca_pem": signed.ca_pem}

    async def revoke_certificates(self, actor: str, name: str) -> int:
        """Put every certificate signed for it on the CRL; answers how many."""
        await self._row(name)
        now = self.clock()
        async with self.db.transaction() as conn:
            serials = await run(
                conn,
                "UPDATE partner_certificates SET revoked_at = :now "
                "WHERE partner_id = :id AND revoked_at IS NULL RETURNING serial",
                id=name,
                now=now,
            )
            if serials:
                revoke_serials(self._pki_dir, [int(r["serial"]) for r in serials])
            await self._audit(conn, actor, "partner.certificate", name, revoked=len(serials))
        return len(serials)

    async def rotate_webhook_secret(self, actor: str, name: str) -> dict[str, str]:
        """A new webhook secret; the one it replaces is accepted ``SECRET_OVERLAP`` more."""
        secret = new_webhook_secret()
        now = self.clock()
        async with self.db.transaction() as conn:
            rows = await run(
                conn,
                "SELECT webhook_secret_sealed FROM partners WHERE id = :id AND removed_at IS NULL",
                id=name,
            )
            if not rows:
                raise UnknownObjectError("partner", name)
            current = rows[0]["webhook_secret_sealed"]
            previous = (
                self._seal(self._open(current, "webhook_secret", name), "previous_secret", name)
                if current
                else None
            )
            await run(
                conn,
                "UPDATE partners SET webhook_secret_sealed = :s, previous_secret_sealed = :p, "
                "previous_secret_until = :u, updated_at = :now, version = version + 1 "
                "WHERE id = :id",
                id=name,
                s=self._seal(secret, "webhook_secret", name),
                p=previous,
                u=now + SECRET_OVERLAP if previous else None,
                now=now,
            )
            await self._audit(conn, actor, "partner.webhook_secret", name)
        await self._announce(name)
        return {"webhook_secret": secret}

    async def adopt(
        self,
        name: str,
        *,
        webhook_secret: str,
        credential: Credential | None,
        server_ca_pem: str | None,
    ) -> bool:
        """Give a partner registered before the registry (files, ``pki issue-partner``) the
        secrets it used from the data dir, once; True when it took them."""
        sealed = (
            self._seal(fields.credential_json(credential), "credential", name)
            if credential
            else None
        )
        changed = await self.db.execute(
            "UPDATE partners SET webhook_secret_sealed = :s, version = version + 1, "
            "credential_sealed = COALESCE(credential_sealed, :c), "
            "server_ca_pem = COALESCE(server_ca_pem, :ca), updated_at = :now "
            "WHERE id = :id AND webhook_secret_sealed IS NULL AND removed_at IS NULL",
            id=name,
            s=self._seal(webhook_secret, "webhook_secret", name),
            c=sealed,
            ca=server_ca_pem,
            now=self.clock(),
        )
        return changed > 0

    async def unadopted(self) -> list[tuple[str, str]]:
        """(name, adapter) of the partners without a webhook secret in the store yet."""
        rows = await self.db.fetch_all(
            "SELECT id, adapter FROM partners "
            "WHERE webhook_secret_sealed IS NULL AND removed_at IS NULL ORDER BY id"
        )
        return [(str(r["id"]), str(r["adapter"])) for r in rows]
