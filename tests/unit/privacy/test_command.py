"""``run.py retention run``: the report on stdout, refusals on stderr with exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from propdev.config import Settings
from propdev.privacy import retention_command
from propdev.storage import Database


async def _runs(settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        row = await db.fetch_one("SELECT COUNT(*) AS n FROM retention_runs")
    finally:
        await db.close()
    assert row is not None
    return int(row["n"])


async def test_a_run_as_of_now_prints_its_report_and_a_bad_as_of_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], logs_captured: list[dict[str, Any]]
) -> None:
    settings = Settings.from_env(
        {"PROPDEV_DATA_DIR": str(tmp_path), "PROPDEV_RETENTION_EVENTS_DAYS": "10"}
    )

    assert await retention_command(settings, None) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["trigger"], report["events_deleted"]) == ("cli", 0)

    for bad, words in (("2000-01-01", "earlier than the last run"), ("soon", "ISO-8601")):
        assert await retention_command(settings, bad) == 2
        out, err = capsys.readouterr()
        assert out == "" and words in err
    assert await _runs(settings) == 1
