"""The supervision console in headless Chromium: the operator logs in through the real form
(password + TOTP), sees the tree grow after a resident's open, restarts the actor from the page,
opens a door by hand with a reason, revokes a resident's guest pass, sees the audit's last
signed checkpoint, and the page is left as ``docs/console.png``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from propdev.integrity import PUBLIC_FILE, read_verifier_keys
from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.e2e.test_open_door import bearer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "console.png"
WAIT = 30.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def spki_hash(cert_pem: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the node's certificate, for Chromium to trust."""
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    """The e2e node, signing an audit checkpoint every second (the console shows the last)."""
    settings = node_settings(tmp_path, PROPDEV_AUDIT_CHECKPOINT_SECONDS="1")
    async with running_node(settings) as running:
        yield running


@pytest.fixture
def browser(node: RunningNode, tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1440,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        # Trust exactly the node's key (not every certificate error).
        "--ignore-certificate-errors-spki-list="
        + spki_hash(node.settings.pki_dir / "server" / "cert.pem"),
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def fresh(driver: WebDriver, css: str) -> Callable[[Any], Any]:
    """A wait condition on an element the page re-renders: looked up anew each time."""

    def find(_: Any) -> Any:
        return driver.find_element(By.CSS_SELECTOR, css)

    return find


def wait(driver: WebDriver, condition: Callable[[Any], Any]) -> Any:
    try:
        return WebDriverWait(
            driver,
            WAIT,
            poll_frequency=0.2,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        ).until(condition)
    except TimeoutException:
        page = driver.find_element(By.TAG_NAME, "body").text[:3000]
        logs = [e["message"] for e in driver.get_log("browser")]
        raise AssertionError(f"timed out at {driver.current_url}\n{page}\n{logs}") from None


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def log_in(driver: WebDriver, url: str, operator: dict[str, str]) -> None:
    driver.get(f"{url}/admin/")
    # The page sends the browser to the login form (code + PKCE) on its own.
    wait(driver, fresh(driver, "input[name=username]"))
    assert "/oauth/authorize" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys(operator["username"])
    driver.find_element(By.NAME, "password").send_keys(operator["password"])
    driver.find_element(By.NAME, "otp").send_keys(pyotp.TOTP(operator["totp_secret"]).now())
    driver.find_element(By.CSS_SELECTOR, "form [type=submit], form button").click()
    wait(driver, lambda d: text_of(d, "#status") == "live")
    assert driver.current_url == f"{url}/admin/"  # the code left the address bar
    assert text_of(driver, "#who") == operator["username"]
    wait(driver, fresh(driver, '#tree [data-supervisor="device"]'))


def restart_from_the_page(driver: WebDriver, actor_id: str) -> None:
    row = f'tr[data-actor="{actor_id}"]'
    wait(driver, fresh(driver, row))
    assert text_of(driver, f"{row} [data-field=restarts]") == "0"
    wait(driver, fresh(driver, f'button[data-restart="{actor_id}"]')).click()
    wait(driver, lambda d: text_of(d, f"{row} [data-field=restarts]") == "1")


def open_by_hand(driver: WebDriver, access_point_id: str, reason: str) -> None:
    Select(driver.find_element(By.ID, "open-ap")).select_by_value(access_point_id)
    driver.find_element(By.ID, "open-reason").send_keys(reason)
    driver.find_element(By.ID, "open-submit").click()
    wait(driver, lambda d: text_of(d, "#open-result").startswith("Opened " + access_point_id))
    wait(driver, lambda d: reason in text_of(d, "#audit tbody"))


def revoke_from_the_page(driver: WebDriver, pass_id: str) -> None:
    status = f'tr[data-pass="{pass_id}"] [data-field=status]'
    wait(driver, lambda d: text_of(d, status) == "active")
    wait(driver, fresh(driver, f'button[data-revoke-pass="{pass_id}"]')).click()
    wait(driver, lambda d: text_of(d, status) == "revoked")
    wait(driver, lambda d: "guest_pass.revoke" in text_of(d, "#audit tbody"))
    assert not driver.find_elements(By.CSS_SELECTOR, f'button[data-revoke-pass="{pass_id}"]')


def checkpoint_line(driver: WebDriver) -> str:
    wait(driver, lambda d: text_of(d, "#audit-checkpoint").startswith("Last signed checkpoint #"))
    return text_of(driver, "#audit-checkpoint")


def audit_row(driver: WebDriver, reason: str) -> list[str]:
    for row in driver.find_elements(By.CSS_SELECTOR, "#audit tbody tr"):
        cells = [str(td.text) for td in row.find_elements(By.TAG_NAME, "td")]
        if cells and cells[-1] == reason:
            return cells
    raise AssertionError(f"no audit row with reason {reason!r}")


async def test_an_operator_logs_in_watches_the_tree_and_restarts_an_actor(
    node: RunningNode, browser: webdriver.Chrome
) -> None:
    operator = node.credentials["operator"]
    door = node.resident("anna")["access_point_ids"][0]
    actor_id = f"device:{door}"
    resident = bearer(await node.token_for("anna"))
    now = datetime.now(UTC)
    async with node.http.post(
        f"{node.url}/api/v1/guest-passes",
        json={
            "access_point_ids": [door],
            "valid_from": now.isoformat(),
            "valid_until": (now + timedelta(hours=2)).isoformat(),
            "max_uses": 2,
        },
        headers=resident,
    ) as resp:
        assert resp.status == 201
        pass_id = (await resp.json())["id"]

    await asyncio.to_thread(log_in, browser, node.url, operator)
    assert not browser.find_elements(By.CSS_SELECTOR, f'tr[data-actor="{actor_id}"]')

    async with node.http.post(
        f"{node.url}/api/v1/access-points/{door}/open", headers=resident
    ) as resp:
        assert resp.status == 200

    await asyncio.to_thread(restart_from_the_page, browser, actor_id)
    reason = "Courier stuck at the gate, resident called the desk"
    await asyncio.to_thread(open_by_hand, browser, "ap-b-courtyard", reason)

    # The audit log on the page: the one entry of the open names the operator and the reason.
    # (A second operator login would reuse the TOTP code: refused.)
    cells = await asyncio.to_thread(audit_row, browser, reason)
    assert cells[2:] == [
        f"operator:{operator['id']}",
        "manual_open",
        "ap-b-courtyard",
        "granted",
        reason,
    ]

    # The audit's last signed checkpoint, signed with the data dir's checkpoint key.
    line = await asyncio.to_thread(checkpoint_line, browser)
    (key,) = read_verifier_keys(node.settings.data_dir / PUBLIC_FILE)
    assert re.fullmatch(
        rf"Last signed checkpoint #\d+: .+, \d+ entries in \d+ chains, root \S+=, key {key.hex_id}",
        line,
    ), line

    # Revoke anna's guest pass from the page: she sees it revoked at once.
    await asyncio.to_thread(revoke_from_the_page, browser, pass_id)
    async with node.http.get(f"{node.url}/api/v1/guest-passes/{pass_id}", headers=resident) as resp:
        assert (await resp.json())["status"] == "revoked"

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []  # no CSP violation, no failed load, no script error
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))


def swagger_ui_title(driver: WebDriver, url: str) -> str:
    driver.get(f"{url}/docs")
    wait(driver, fresh(driver, ".swagger-ui .info .title"))
    wait(
        driver, fresh(driver, '.opblock-summary-path[data-path="/api/v1/access-points/{id}/open"]')
    )
    return text_of(driver, ".swagger-ui .info .title")


async def test_swagger_ui_renders_the_document_from_local_files(
    node: RunningNode, browser: webdriver.Chrome
) -> None:
    title = await asyncio.to_thread(swagger_ui_title, browser, node.url)
    assert title.startswith("propdev")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []  # every asset came from the node, within the page's CSP
