"""The console tells an operator whose recovery codes run low to make a new set (headless
Chromium, the real login form)."""

from __future__ import annotations

import asyncio
import time

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from propdev.security import RECOVERY_CODES_LOW, open_vault
from propdev.security.recovery import use_recovery_code
from propdev.storage import Database
from tests.e2e.conftest import RunningNode
from tests.e2e.test_console import browser as browser  # a fixture
from tests.e2e.test_console import log_in, text_of, wait

pytestmark = pytest.mark.slow


async def _spend(node: RunningNode, count: int) -> None:
    """Use ``count`` of the operator's recovery codes, as logins with them would."""
    operator = node.credentials["operator"]
    db = Database(node.settings.database_url)
    await open_vault(node.settings, db)
    try:
        for code in operator["recovery_codes"][:count]:
            used = await asyncio.to_thread(
                use_recovery_code, db, operator["id"], code, now=time.time()
            )
            assert used
    finally:
        await db.close()


async def test_the_console_asks_for_new_recovery_codes_when_few_remain(
    node: RunningNode, browser: webdriver.Chrome
) -> None:
    await _spend(node, 10 - RECOVERY_CODES_LOW)
    operator = node.credentials["operator"]
    await asyncio.to_thread(log_in, browser, node.url, operator)
    hint = await asyncio.to_thread(
        wait, browser, lambda d: d.find_element(By.ID, "recovery").is_displayed()
    )
    assert hint
    text = text_of(browser, "#recovery")
    assert text == (
        f"{RECOVERY_CODES_LOW} recovery codes left: "
        f"python run.py totp recovery-codes {operator['username']}"
    )
    assert not any(code in browser.page_source for code in operator["recovery_codes"])
