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

from propdev.registry import shard_of
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


async def test_audit_verify_checks_the_checkpoints_across_a_key_rotation_and_finds_a_truncation(
    tmp_path: Path,
) -> None:
    # One checkpoint, at the clean stop: the timer's would come after a day.
    async with access_node(tmp_path, PROPDEV_AUDIT_CHECKPOINT_SECONDS="86400") as site:
        anna = site.running.resident("anna")
        await site.node.access.vehicles.register(anna["id"], "A123BC77")
        for plate in ("A123BC77", "X999XX99"):
            await site.partner_posts(BARRIER, "plate_recognized", plate=plate)
        entries = await site.audit(BARRIER)
    # The node wrote a last checkpoint as it stopped: it covers both entries.
    env = cli_env(tmp_path)
    verified = await run_cli(["audit", "verify"], env)
    assert verified.returncode == 0, str(verified)
    report = json.loads(verified.stdout)
    assert (report["ok"], report["checkpoints"]) == (True, 1), report

    rotated = await run_cli(["audit", "rotate-checkpoint-key"], env)
    assert rotated.returncode == 0, str(rotated)
    new_key = json.loads(rotated.stdout)["verifier_key"]
    listed = await run_cli(["audit", "checkpoint-keys"], env)
    assert listed.returncode == 0 and new_key in listed.stdout.splitlines(), str(listed)
    assert len(listed.stdout.splitlines()) == 2
    assert (await run_cli(["audit", "verify"], env)).returncode == 0  # the old key still known

    only_new = tmp_path / "new.pub"
    only_new.write_text(new_key + "\n")
    foreign = await run_cli(["audit", "verify", "--public-key", str(only_new)], env)
    assert foreign.returncode == 1, str(foreign)
    assert json.loads(foreign.stdout)["checkpoint"] == 1
    missing = await run_cli(["audit", "verify", "--public-key", str(tmp_path / "none")], env)
    assert missing.returncode == 2 and "--public-key" in missing.stderr, str(missing)

    with contextlib.closing(sqlite3.connect(tmp_path / "propdev.db")) as db, db:
        db.execute("DELETE FROM audit WHERE id = ?", (entries[-1]["id"],))
    truncated = await run_cli(["audit", "verify"], env)
    assert truncated.returncode == 1, str(truncated)
    report = json.loads(truncated.stdout)
    assert (report["first_bad_id"], report["chain"], report["checkpoint"]) == (
        entries[-1]["id"],
        shard_of(BARRIER),
        1,
    )
    assert "truncated" in truncated.stderr
