"""The console's Partners page in headless Chromium, through the real login form (password +
TOTP): the organisation's admin is refused a partner whose base URL is not HTTPS (the problem
document's detail on the page, nothing stored), registers it with an https one and is shown its
webhook secret once, changes its limits, rotates the secret (the new one shown once, the old one
still accepted), and deletes it after a confirmation; the secrets shown are the ones the store
holds. The Estate page offers the registered partners for a new access point. An organisation
auditor reads the list and is offered no change; a site operator has no Partners tab. The page
is left as ``docs/console-partners.png``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from propdev.management import PartnerRecord, PartnerRegistry
from propdev.security import open_vault
from propdev.storage import Database
from tests.e2e.conftest import RunningNode
from tests.e2e.test_console import browser as browser  # a fixture
from tests.e2e.test_console import fresh, log_in, text_of, wait
from tests.e2e.test_console_estate import (
    accept_confirmation,
    displayed,
    screenshot,
    tab,
    type_into,
)

pytestmark = pytest.mark.slow

VENDOR = "vendor-ui"
ROW = f'#partners tr[data-partner-row="{VENDOR}"]'
SECRET = "#partner-secret [data-secret=webhook_secret]"


def field(driver: WebDriver, name: str) -> str:
    return text_of(driver, f"{ROW} [data-field={name}]")


def listed(driver: WebDriver) -> set[str]:
    return {
        str(e.get_attribute("data-partner-row"))
        for e in driver.find_elements(By.CSS_SELECTOR, "#partners tr[data-partner-row]")
    }


def admin_registers_a_partner(driver: WebDriver, url: str, admin: dict[str, Any]) -> dict[str, str]:
    log_in(driver, url, admin)
    seen: dict[str, str] = {}
    tab(driver, "partners")
    wait(driver, lambda d: "simulator" in listed(d))
    assert displayed(driver, "#partner-form")

    # A base URL that is not HTTPS: the problem document's detail, nothing registered.
    type_into(driver, "#partner-name", VENDOR)
    type_into(driver, "#partner-adapter", "simulator")
    type_into(driver, "#partner-base-url", "http://vendor-ui.example.net/api")
    type_into(driver, "#partner-networks", "192.0.2.0/24 198.51.100.7/32")
    driver.find_element(By.ID, "partner-submit").click()
    wait(driver, lambda d: text_of(d, "#partners-problem") != "")
    seen["refused"] = text_of(driver, "#partners-problem")
    assert not displayed(driver, "#partner-secret")
    assert VENDOR not in listed(driver)

    # With an https base URL: registered, its webhook secret shown once.
    type_into(driver, "#partner-base-url", "https://vendor-ui.example.net/api")
    driver.find_element(By.ID, "partner-submit").click()
    secret = wait(driver, fresh(driver, SECRET))
    seen["secret"] = str(secret.text)
    assert text_of(driver, "#partners-problem") == ""
    wait(driver, lambda d: VENDOR in listed(d))
    assert field(driver, "adapter") == "simulator"
    assert field(driver, "base_url") == "https://vendor-ui.example.net/api"
    assert field(driver, "allow_ips") == "192.0.2.0/24 198.51.100.7/32"
    assert field(driver, "limits") == "node's settings"
    assert field(driver, "certificate") == "none from a CSR"
    wait(driver, lambda d: field(d, "breaker") == "closed")  # a gateway on this node at once
    screenshot(driver, "partners")
    driver.find_element(By.CSS_SELECTOR, "#partner-secret button").click()  # "Done"
    assert not displayed(driver, "#partner-secret")
    assert seen["secret"] not in driver.page_source  # shown once: gone from the page

    # Changed: a rate limit and a bulkhead; the base URL and networks kept as they were.
    driver.find_element(By.CSS_SELECTOR, f'button[data-edit-partner="{VENDOR}"]').click()
    assert driver.find_element(By.ID, "partner-name").get_attribute("disabled") is not None
    base_url = driver.find_element(By.ID, "partner-base-url").get_attribute("value")
    assert base_url == "https://vendor-ui.example.net/api"
    type_into(driver, "#partner-rate-limit", "5")
    type_into(driver, "#partner-bulkhead", "3")
    driver.find_element(By.ID, "partner-submit").click()
    wait(driver, lambda d: field(d, "limits") == "5/s · 3 in flight")
    assert field(driver, "allow_ips") == "192.0.2.0/24 198.51.100.7/32"
    assert text_of(driver, "#partner-form-title") == "Register a partner"  # the form afresh

    # The Estate page offers it for a new access point.
    tab(driver, "estate")
    wait(
        driver,
        lambda d: (
            VENDOR
            in [
                o.get_attribute("value")
                for o in Select(d.find_element(By.ID, "point-partner")).options
            ]
        ),
    )

    # Its webhook secret rotated: a new one, shown once.
    tab(driver, "partners")
    wait(driver, lambda d: VENDOR in listed(d))
    driver.find_element(By.CSS_SELECTOR, f'button[data-rotate-partner="{VENDOR}"]').click()
    wait(driver, lambda d: text_of(d, SECRET) not in ("", seen["secret"]))
    seen["rotated"] = text_of(driver, SECRET)
    assert "New webhook secret of vendor-ui" in text_of(driver, "#partner-secret")
    return seen


def admin_deletes_the_partner(driver: WebDriver) -> str:
    driver.find_element(By.CSS_SELECTOR, f'button[data-delete-partner="{VENDOR}"]').click()
    question = accept_confirmation(driver)
    wait(driver, lambda d: VENDOR not in listed(d))
    assert "simulator" in listed(driver)
    assert not displayed(driver, "#partner-secret")  # the rotated secret went with it
    return question


async def stored(node: RunningNode, name: str) -> PartnerRecord | None:
    """The partner as every node applies it, secrets opened, read from the node's store."""

    async def announce(_: str) -> None:
        return None

    db = Database(node.settings.database_url)
    try:
        await open_vault(node.settings, db)
        registry = PartnerRegistry(
            db, adapters=lambda: ["simulator"], pki_dir=node.settings.pki_dir, announce=announce
        )
        return await registry.load(name)
    finally:
        await db.close()


async def test_the_admin_registers_rotates_and_deletes_a_partner_on_the_page(
    node: RunningNode, browser: webdriver.Chrome
) -> None:
    admin = node.credentials["operator"]
    seen = await asyncio.to_thread(admin_registers_a_partner, browser, node.url, admin)
    assert "base_url" in seen["refused"] and "https" in seen["refused"].lower(), seen["refused"]

    # The secrets the page showed are the store's: the new one, and the previous one still
    # accepted (the overlap window of a rotation).
    record = await stored(node, VENDOR)
    assert record is not None
    assert record.secrets_at(time.time()) == [seen["rotated"], seen["secret"]]
    assert (record.base_url, record.rate_limit, record.bulkhead) == (
        "https://vendor-ui.example.net/api",
        5.0,
        3,
    )
    assert record.allowed_cidrs == ("192.0.2.0/24", "198.51.100.7/32")

    question = await asyncio.to_thread(admin_deletes_the_partner, browser)
    assert question.startswith("Delete vendor-ui?")
    assert await stored(node, VENDOR) is None  # removed: no node calls it any more
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    # Only the refused registration's answer (400, shown on the page): no CSP violation, no
    # script error.
    assert len(errors) == 1 and "400" in errors[0], errors


def auditor_reads_the_list(driver: WebDriver, url: str, auditor: dict[str, Any]) -> None:
    log_in(driver, url, auditor)
    assert displayed(driver, '#tabs [data-tab="partners-page"]')
    tab(driver, "partners")
    wait(driver, lambda d: "simulator" in listed(d))
    assert text_of(driver, '#partners tr[data-partner-row="simulator"] [data-field=adapter]') == (
        "simulator"
    )
    assert not displayed(driver, "#partner-form")
    assert not displayed(driver, "#partners td.actions button")


def site_operator_has_no_partners_tab(
    driver: WebDriver, url: str, operator: dict[str, Any]
) -> None:
    log_in(driver, url, operator)
    assert displayed(driver, '#tabs [data-tab="estate-page"]')  # the tabs are shown…
    assert not displayed(driver, '#tabs [data-tab="partners-page"]')  # …but not this one
    assert not displayed(driver, "#partners-page")
    assert not displayed(driver, "#partner-form")


async def test_an_auditor_only_reads_partners_and_a_site_operator_has_no_partners_tab(
    node: RunningNode, browser: webdriver.Chrome
) -> None:
    staff = {o["username"]: o for o in node.credentials["operators"]}
    await asyncio.to_thread(auditor_reads_the_list, browser, node.url, staff["auditor"])
    await asyncio.to_thread(
        site_operator_has_no_partners_tab, browser, node.url, staff["riverside-operator"]
    )
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
