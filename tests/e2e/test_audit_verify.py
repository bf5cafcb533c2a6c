"""``run.py audit verify`` over plate decisions: the chain holds; a deleted entry breaks it.

(``test_processes.py`` covers an entry edited after opens; this covers entries whose actor is a
credential, and a deletion.)

Our audit chain, not a vendor's behaviour: the embedded simulator is the vendor; the plates
come over ``POST /partner/v1/events`` as the partner sends them.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.access import access_node
from tests.support.processes import cli_env, run_cli

pytestmark = pytest.mark.slow

BARRIER = "ap-parking"


async def test_audit_verify_passes_over_credential_decisions_and_fails_once_one_is_deleted(
    tmp_path: Path,
) -> None:
    async with access_node(tmp_path) as site:
        anna = site.running.resident("anna")
        await site.node.access.vehicles.register(anna["id"], "A123BC77")
        for plate in ("A123BC77", "X999XX99", "A123BC77"):
            await site.partner_posts(BARRIER, "plate_recognized", plate=plate)
        entries = await site.audit(BARRIER)
    assert [e["decision"] for e in entries] == ["granted", "denied", "granted"]

    verified = await run_cli(["audit", "verify"], cli_env(tmp_path))
    assert verified.returncode == 0, str(verified)
    assert json.loads(verified.stdout)["ok"] is True

    with contextlib.closing(sqlite3.connect(tmp_path / "propdev.db")) as db, db:
        db.execute("DELETE FROM audit WHERE id = ?", (entries[1]["id"],))

    tampered = await run_cli(["audit", "verify"], cli_env(tmp_path))
    assert tampered.returncode == 1, str(tampered)
    report = json.loads(tampered.stdout)
    assert (report["ok"], report["first_bad_id"]) == (False, entries[2]["id"])
