"""The resident web app in headless Chromium, in a phone-sized window: a demo resident signs in
through the real login page (code + PKCE), sees their doors, opens one and sees the
``access.granted`` event arrive over the WebSocket; an open the partner fails shows the reason
and a retry that works; a guest pass is issued, shared and revoked, a vehicle added; the page
is left as ``docs/app.png``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from propdev.node import serve
from propdev.pki import client_context
from tests.e2e.conftest import RunningNode, node_settings
from tests.e2e.test_console import CHROMEDRIVER, CHROMIUM, WAIT, fresh, spki_hash, text_of, wait
from tests.e2e.test_observability import sim
from tests.e2e.test_open_door import bearer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "app.png"
PHONE = (412, 915)  # CSS pixels of a common Android phone


@pytest.fixture
def phone(node: RunningNode, tmp_path: Path) -> Iterator[webdriver.Chrome]:
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
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        # Trust exactly the node's key (not every certificate error).
        "--ignore-certificate-errors-spki-list="
        + spki_hash(node.settings.pki_dir / "server" / "cert.pem"),
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "mobileEmulation",
        {"deviceMetrics": {"width": PHONE[0], "height": PHONE[1], "pixelRatio": 1}},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: WebDriver, url: str, username: str, password: str) -> None:
    driver.get(f"{url}/app/")
    wait(driver, fresh(driver, "#login")).click()
    wait(driver, fresh(driver, "input[name=username]"))
    assert driver.current_url.startswith(f"{url}/oauth/authorize?")
    assert "code_challenge_method=S256" in driver.current_url
    assert "client_id=resident-web" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit], form button").click()
    wait(driver, lambda d: text_of(d, "#status") == "live")
    assert driver.current_url == f"{url}/app/"  # the code left the address bar


def door_ids(driver: WebDriver) -> list[str]:
    cards = driver.find_elements(By.CSS_SELECTOR, "#doors [data-door]")
    return sorted(str(c.get_attribute("data-door")) for c in cards)


def result_of(driver: WebDriver, door: str) -> str:
    return str(
        driver.find_element(By.CSS_SELECTOR, f'[data-door="{door}"] .result').get_attribute(
            "data-result"
        )
    )


def open_and_see_the_event(driver: WebDriver, door: str, name: str) -> str:
    granted = '#events li[data-type="access.granted"]'
    assert not driver.find_elements(By.CSS_SELECTOR, granted)
    driver.find_element(By.CSS_SELECTOR, f'button[data-open="{door}"]').click()
    wait(driver, lambda d: result_of(d, door) == "granted")
    result = driver.find_element(By.CSS_SELECTOR, f'[data-door="{door}"] .result')
    assert result.text == "Opened."
    command_id = str(result.get_attribute("data-command"))
    event = wait(driver, fresh(driver, granted))
    assert name in event.text and "Opened" in event.text
    return command_id


def open_and_see(driver: WebDriver, door: str, outcome: str) -> tuple[str, str]:
    """Tap Open; the outcome line's text and command id once it says ``outcome``."""
    driver.find_element(By.CSS_SELECTOR, f'button[data-open="{door}"]').click()
    wait(driver, lambda d: result_of(d, door) == outcome)
    line = driver.find_element(By.CSS_SELECTOR, f'[data-door="{door}"] .result')
    return str(line.text), str(line.get_attribute("data-command"))


def retry(driver: WebDriver, door: str) -> str:
    driver.find_element(By.CSS_SELECTOR, f'button[data-retry="{door}"]').click()
    wait(driver, lambda d: result_of(d, door) == "granted")
    line = driver.find_element(By.CSS_SELECTOR, f'[data-door="{door}"] .result')
    assert not driver.find_elements(By.CSS_SELECTOR, f'button[data-retry="{door}"]')
    return str(line.get_attribute("data-command"))


def issue_and_revoke_a_pass(driver: WebDriver, door: str) -> str:
    driver.find_element(By.CSS_SELECTOR, '#tabs [data-tab="guests"]').click()
    wait(driver, fresh(driver, f'#pass-doors input[value="{door}"]')).click()
    driver.find_element(By.ID, "pass-submit").click()
    wait(driver, lambda d: d.find_element(By.ID, "pass-issued").is_displayed())
    code = text_of(driver, "#pass-code")
    assert code.isdigit() and len(code) == 8
    sms = str(driver.find_element(By.ID, "pass-sms").get_attribute("href"))
    assert sms.startswith("sms:") and code in sms
    revoke = wait(driver, fresh(driver, "#passes button[data-revoke]"))
    pass_id = str(revoke.get_attribute("data-revoke"))
    revoke.click()
    wait(driver, lambda d: "revoked" in text_of(d, f'#passes [data-pass="{pass_id}"]'))
    assert not driver.find_elements(By.CSS_SELECTOR, f'[data-revoke="{pass_id}"]')
    return pass_id


def add_a_vehicle(driver: WebDriver, plate: str) -> None:
    driver.find_element(By.CSS_SELECTOR, '#tabs [data-tab="vehicles"]').click()
    wait(driver, lambda d: d.find_element(By.ID, "vehicle-plate").is_displayed())
    driver.find_element(By.ID, "vehicle-plate").send_keys(plate)
    driver.find_element(By.ID, "vehicle-submit").click()
    wait(driver, fresh(driver, "#vehicles [data-vehicle]"))
    assert text_of(driver, "#vehicles .plate") == "A123BC77"


def refresh_at_once_from_three_calls(driver: WebDriver) -> tuple[str, str, list[str]]:
    """The access token is made to look expired and three calls go out together: one refresh
    (the refresh token rotates; a second use of the spent one would end the session)."""
    answer = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const before = session.refresh;
        session.expiresAt = 0;
        Promise.all([api("GET", "/api/v1/me"), api("GET", "/api/v1/access-points"),
                     api("GET", "/api/v1/vehicles")])
          .then((answers) => done([before, session.refresh, answers.map((a) => typeof a)]))
          .catch((err) => done([before, null, [String(err)]]));
        """
    )
    return str(answer[0]), str(answer[1]), list(answer[2])


def account(driver: WebDriver, self_service: bool) -> None:
    driver.find_element(By.CSS_SELECTOR, '#tabs [data-tab="account"]').click()
    wait(driver, lambda d: "(anna)" in text_of(d, "#me"))
    if self_service:  # the API.md v2 routes are on this server: the screens are there
        wait(driver, fresh(driver, "#sessions [data-session]"))
        assert "this browser" in text_of(driver, "#sessions")
        assert driver.find_element(By.ID, "password-form").is_displayed()
    else:
        assert driver.find_element(By.ID, "account-missing").is_displayed()
        assert not driver.find_element(By.ID, "password-form").is_displayed()


def sign_out(driver: WebDriver) -> None:
    driver.find_element(By.ID, "logout").click()
    wait(driver, lambda d: text_of(d, "#landing-message") == "You are signed out.")
    assert driver.find_element(By.ID, "login").is_displayed()
    assert not driver.find_element(By.ID, "main").is_displayed()


def home(driver: WebDriver) -> None:
    driver.find_element(By.CSS_SELECTOR, '#tabs [data-tab="home"]').click()
    wait(driver, lambda d: d.find_element(By.ID, "doors").is_displayed())


async def test_a_resident_signs_in_opens_a_door_and_sees_the_event_live(
    node: RunningNode, phone: webdriver.Chrome
) -> None:
    async with node.http.get(f"{node.url}/app/") as resp:
        assert resp.status == 200
        policy = resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "script-src 'self';" in policy

    # The vendor reports the barrier offline and the main entrance back online.
    base = node.credentials["partner_sim_url"]
    for device, online in (("sim-barrier-1", False), ("sim-door-1", False), ("sim-door-1", True)):
        async with node.http.patch(f"{base}/sim/v1/devices/{device}", json={"online": online}) as r:
            assert r.status == 200, await r.text()
    async with node.http.post(f"{base}/sim/v1/callbacks/flush") as resp:
        assert resp.status == 204

    anna = node.resident("anna")
    names = {a["id"]: a["name"] for a in node.credentials["access_points"]}
    await asyncio.to_thread(sign_in, phone, node.url, "anna", anna["password"])
    assert await asyncio.to_thread(door_ids, phone) == sorted(anna["access_point_ids"])
    assert text_of(phone, "#who") == anna["full_name"]
    door = "ap-a-entrance"
    assert text_of(phone, f'[data-door="{door}"] [data-field=online]') == "Door · online"
    assert text_of(phone, '[data-door="ap-parking"] [data-field=online]') == "Barrier · offline"
    assert text_of(phone, '[data-door="ap-a-courtyard"] [data-field=online]').endswith("unknown")

    command_id = await asyncio.to_thread(open_and_see_the_event, phone, door, names[door])
    token = await node.token_for("anna")
    async with node.http.get(
        f"{node.url}/api/v1/commands/{command_id}", headers=bearer(token)
    ) as resp:
        assert resp.status == 200  # the command the page named is anna's open of that door
        assert (await resp.json())["access_point_id"] == door

    # The partner fails: the reason and a retry; it recovers: the retry (same key) opens.
    await sim(node, "POST", "/sim/v1/faults", mode="error")
    text, failed = await asyncio.to_thread(open_and_see, phone, "ap-a-courtyard", "failed")
    assert text == "Failed: simulated vendor failure (partner-unavailable).\nRetry"
    await sim(node, "POST", "/sim/v1/faults", mode="ok")
    assert await asyncio.to_thread(retry, phone, "ap-a-courtyard") == failed  # the same key

    # The vendor refuses: the reason, and no retry (it would only be refused again).
    await sim(node, "POST", "/sim/v1/faults", mode="deny")
    text, _ = await asyncio.to_thread(open_and_see, phone, "ap-parking", "refused")
    assert text == "Refused: The device vendor refused to open: denied."
    assert not phone.find_elements(By.CSS_SELECTOR, 'button[data-retry="ap-parking"]')
    await sim(node, "POST", "/sim/v1/faults", mode="ok")

    on_purpose = ("/ap-a-courtyard/open - Failed to load resource", "/ap-parking/open - Failed")
    errors = [
        e["message"]
        for e in phone.get_log("browser")
        if e["level"] == "SEVERE" and not any(p in e["message"] for p in on_purpose)
    ]
    assert errors == []  # no CSP violation, no failed load, no script error
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert phone.save_screenshot(str(SCREENSHOT))

    pass_id = await asyncio.to_thread(issue_and_revoke_a_pass, phone, door)
    async with node.http.get(
        f"{node.url}/api/v1/guest-passes/{pass_id}", headers=bearer(token)
    ) as resp:
        assert (await resp.json())["status"] == "revoked"
    await asyncio.to_thread(add_a_vehicle, phone, "a 123 bc 77")
    async with node.http.get(f"{node.url}/api/v1/vehicles", headers=bearer(token)) as resp:
        assert [v["plate"] for v in await resp.json()] == ["A123BC77"]
    await asyncio.to_thread(home, phone)

    before, after, answers = await asyncio.to_thread(refresh_at_once_from_three_calls, phone)
    assert answers == ["object", "object", "object"] and after not in (before, "None")
    await asyncio.to_thread(open_and_see, phone, door, "granted")  # the session goes on

    async with node.http.get(f"{node.url}/openapi.json") as resp:
        documented = (await resp.json())["paths"]
    await asyncio.to_thread(account, phone, "/api/v1/me/sessions" in documented)
    errors = [e["message"] for e in phone.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []

    await asyncio.to_thread(sign_out, phone)  # the refresh token is revoked
    async with node.http.post(
        f"{node.url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": after, "client_id": "resident-web"},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_grant"


async def test_a_node_registers_the_web_app_for_its_public_url_without_seeding(
    tmp_path: Path,
) -> None:
    public = "https://homes.example:8443"
    settings = node_settings(tmp_path, PROPDEV_PUBLIC_URL=public)
    ready = asyncio.Event()
    task = asyncio.create_task(serve(settings, ready=ready))  # no seed-demo before it
    try:
        await asyncio.wait_for(ready.wait(), 30)
        local = f"https://127.0.0.1:{settings.port}"
        query = {
            "response_type": "code",
            "client_id": "resident-web",
            "scope": "openid profile api",
            "state": "s" * 16,
            "code_challenge": "c" * 43,
            "code_challenge_method": "S256",
        }
        connector = aiohttp.TCPConnector(ssl=client_context(settings.pki_dir))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get(
                f"{local}/oauth/authorize", params={**query, "redirect_uri": f"{public}/app/"}
            ) as resp:
                assert resp.status == 200
                assert 'name="password"' in await resp.text()  # the login form
            async with http.get(
                f"{local}/oauth/authorize",
                params={**query, "redirect_uri": f"{local}/app/"},
                allow_redirects=False,
            ) as resp:
                assert resp.status == 400  # not its redirect: an error page, no redirect
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
