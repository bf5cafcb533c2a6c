"""Audit entries' personal fields sealed at rest (hash format 4, ``propdev.storage.audit``).

An entry's ``personal`` (an attempted username, a client id, a source address) is sealed
before it is appended: under the person key of the entry's ``subject`` when that user has
one (erasure destroys it with the rest of their data), else under the store's data key (an
attempt on a username that is no one's). The chain covers the SHA-256 of the sealed text, so
``audit verify`` needs no key. Only account and sign-in entries carry personal fields; opens
never do, and pay nothing for this.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from propdev.security.crypto import PersonKeyDestroyedError, Vault, is_person_sealed
from propdev.storage import Database, Row
from propdev.storage.audit import AuditRecord, personal_text

TABLE, COLUMN = "audit", "personal"
_KEY = "SELECT wrapped FROM person_keys WHERE user_id = :u"


def _row_id(subject: str | None) -> str:
    return subject or "-"


def seal_record(vault: Vault, record: AuditRecord, wrapped: str | None) -> AuditRecord:
    """``record`` with its personal fields sealed (``record.sealed``): under the subject's
    person key, given wrapped as ``wrapped``, else (``None``) under the store's data key."""
    text = personal_text(record.personal)
    if text is None:
        return record
    row_id = _row_id(record.subject)
    if record.subject is not None and wrapped is not None:
        key = vault.unwrap_person_key(record.subject, wrapped)
        sealed = vault.seal_person(key, text, table=TABLE, column=COLUMN, row_id=row_id)
    else:
        sealed = vault.seal(text, table=TABLE, column=COLUMN, row_id=row_id)
    return replace(record, sealed=sealed)


def seal_record_in(run: Callable[..., list[Row]], vault: Vault, record: AuditRecord) -> AuditRecord:
    """``seal_record``, the subject's key read through ``run`` (inside a ``Database.unit``)."""
    if not record.personal:
        return record
    found = run(_KEY, u=record.subject) if record.subject is not None else []
    return seal_record(vault, record, str(found[0]["wrapped"]) if found else None)


async def sealed_record(db: Database, vault: Vault, record: AuditRecord) -> AuditRecord:
    """``seal_record``, the subject's key read from ``db``."""
    if not record.personal:
        return record
    found = await db.fetch_one(_KEY, u=record.subject) if record.subject is not None else None
    return seal_record(vault, record, None if found is None else str(found["wrapped"]))


def open_audit_personal(vault: Vault, row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The personal fields of a format-4 entry ``row`` (read with ``storage.audit.SUBJECT_KEY``)
    opened; ``None`` when the subject's key is destroyed (erased)."""
    text = row["personal"]
    if text is None:
        return None
    subject = row["subject"]
    row_id = _row_id(None if subject is None else str(subject))
    if is_person_sealed(str(text)):
        try:
            clear = vault.open_person(
                row.get("person_key"),
                row_id,
                str(text),
                table=TABLE,
                column=COLUMN,
                row_id=row_id,
            )
        except PersonKeyDestroyedError:
            return None
    else:
        clear = vault.open(str(text), table=TABLE, column=COLUMN, row_id=row_id)
    opened: dict[str, Any] = json.loads(clear)
    return opened


def audit_opener(vault: Vault) -> Callable[[Row], Mapping[str, Any] | None]:
    """``open_audit_personal`` with ``vault``: the ``open_personal`` of ``AuditLog.page``."""
    return lambda row: open_audit_personal(vault, row)
