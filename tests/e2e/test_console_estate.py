"""The console's management pages in headless Chromium, through the real login form (password +
TOTP): the organisation's admin adds an apartment, invites a resident into it (the activation
code the page shows works once), grants them a door with a schedule, finds the ``right.grant``
in the audit view, revokes a guest pass, creates a staff account (whose activation code and
chosen scope work) and moves the resident out; a site operator sees only its site's estate,
residents and passes, and no Staff tab nor any button its role may not use; an auditor reads
everything, staff included, and is offered no change. Each page is left as
``docs/console-<page>.png``."""

from __future__ import annotations

import asyncio
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select

from tests.e2e.conftest import RunningNode
from tests.e2e.test_console import browser as browser  # a fixture
from tests.e2e.test_console import fresh, log_in, text_of, wait
from tests.e2e.test_open_door import bearer
from tests.support.eventually import eventually
from tests.support.oauth_client import login

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs"
NEW_APARTMENT = "bld-a-77"  # the default id of apartment 77 of building A
WEEKLY = "Mon\u2013Sat 07:00\u201323:30"  # as the page writes a schedule (en dashes)
WEEKDAYS = "Mon\u2013Fri 07:00\u201323:30"


def screenshot(driver: WebDriver, page: str) -> None:
    DOCS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(DOCS / f"console-{page}.png"))


def tab(driver: WebDriver, page: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#tabs [data-tab="{page}-page"]').click()
    wait(driver, lambda d: d.find_element(By.ID, f"{page}-page").is_displayed())


def displayed(driver: WebDriver, css: str) -> bool:
    return any(e.is_displayed() for e in driver.find_elements(By.CSS_SELECTOR, css))


def column(driver: WebDriver, rows: str, field: str) -> list[str]:
    return [
        str(e.text) for e in driver.find_elements(By.CSS_SELECTOR, f"{rows} [data-field={field}]")
    ]


def resident_row(driver: WebDriver, username: str) -> str:
    """The CSS selector of ``username``'s row on the Residents page (once it is listed)."""
    for row in driver.find_elements(By.CSS_SELECTOR, "#residents tbody tr[data-resident]"):
        if row.find_element(By.CSS_SELECTOR, "[data-field=username]").text == username:
            return f'#residents tr[data-resident="{row.get_attribute("data-resident")}"]'
    raise AssertionError(f"{username} is not listed")


def type_into(driver: WebDriver, css: str, text: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, css)
    field.clear()
    field.send_keys(text)


def accept_confirmation(driver: WebDriver) -> str:
    alert = wait(driver, expected_conditions.alert_is_present())
    question = str(alert.text)
    alert.accept()
    return question


def admin_manages_the_estate(driver: WebDriver, url: str, admin: dict[str, Any]) -> dict[str, str]:
    log_in(driver, url, admin)
    seen: dict[str, str] = {}

    # Estate: both sites; a new apartment in building A.
    tab(driver, "estate")
    wait(driver, fresh(driver, '#estate-tree [data-site="site-harbour"]'))
    sites = {e.get_attribute("data-site") for e in driver.find_elements(By.CSS_SELECTOR, ".site")}
    assert sites == {"site-harbour", "site-riverside"}
    assert displayed(driver, "#site-form")  # organisation-wide: may create sites
    Select(driver.find_element(By.ID, "apartment-building")).select_by_value("bld-a")
    type_into(driver, "#apartment-number", "77")
    driver.find_element(By.CSS_SELECTOR, "#apartment-form button[type=submit]").click()
    flat = f'#estate-tree [data-building="bld-a"] [data-apartment="{NEW_APARTMENT}"]'
    wait(driver, lambda d: text_of(d, flat) == "77 · 0 living")
    screenshot(driver, "estate")

    # Residents: a taken username is refused with the problem's detail; then nina is invited.
    tab(driver, "residents")
    wait(driver, lambda d: {"anna", "boris", "vera"} <= set(column(d, "#residents", "username")))
    Select(driver.find_element(By.ID, "invite-apartment")).select_by_value(NEW_APARTMENT)
    type_into(driver, "#invite-username", "anna")
    type_into(driver, "#invite-name", "Another Anna")
    driver.find_element(By.CSS_SELECTOR, "#invite-form button[type=submit]").click()
    wait(driver, lambda d: text_of(d, "#residents-problem") != "")
    seen["taken"] = text_of(driver, "#residents-problem")
    Select(driver.find_element(By.ID, "invite-apartment")).select_by_value(NEW_APARTMENT)
    type_into(driver, "#invite-username", "nina")
    type_into(driver, "#invite-name", "Nina Orlova")
    type_into(driver, "#invite-phone", "+79990000077")
    driver.find_element(By.CSS_SELECTOR, "#invite-form button[type=submit]").click()
    code = wait(driver, fresh(driver, "#invite-result [data-secret=activation_code]"))
    seen["activation_code"] = str(code.text)
    seen["temporary_password"] = text_of(driver, "#invite-result [data-secret=temporary_password]")
    assert text_of(driver, "#residents-problem") == ""
    wait(driver, lambda d: "nina" in column(d, "#residents", "username"))
    row = resident_row(driver, "nina")
    seen["nina_id"] = row.split('"')[1]
    assert text_of(driver, f"{row} [data-field=status]") == "active"
    wait(driver, lambda d: text_of(d, "#rights-who") == "nina")  # her rights, none yet
    wait(driver, lambda d: text_of(d, "#rights tbody") == "no doors")
    Select(driver.find_element(By.ID, "residents-apartment")).select_by_value(NEW_APARTMENT)
    wait(driver, lambda d: column(d, "#residents", "username") == ["nina"])
    Select(driver.find_element(By.ID, "residents-apartment")).select_by_value("")
    wait(driver, lambda d: len(column(d, "#residents", "username")) == 4)

    # Rights: the entrance on weekdays and Saturday until 23:30, the courtyard at all times.
    Select(driver.find_element(By.ID, "grant-ap")).select_by_value("ap-a-entrance")
    driver.find_element(By.ID, "grant-always").click()  # a schedule: one window to start with
    window = "#grant-windows .window"
    wait(driver, fresh(driver, window))
    driver.find_element(By.CSS_SELECTOR, f'{window} input[data-day="sat"]').click()
    type_into(driver, f"{window} input.until", "23:30")
    driver.find_element(By.ID, "grant-submit").click()
    schedule = '#rights tr[data-right="ap-a-entrance"] [data-field=schedule]'
    wait(driver, lambda d: text_of(d, schedule) == WEEKLY)
    Select(driver.find_element(By.ID, "grant-ap")).select_by_value("ap-a-courtyard")
    assert driver.find_element(By.ID, "grant-always").is_selected()  # the form starts afresh
    driver.find_element(By.ID, "grant-submit").click()
    courtyard = '#rights tr[data-right="ap-a-courtyard"]'
    wait(driver, lambda d: text_of(d, f"{courtyard} [data-field=schedule]") == "at all times")
    # The entrance's schedule edited: the form opens with its window as it is; Saturday dropped.
    driver.find_element(By.CSS_SELECTOR, 'button[data-edit-right="ap-a-entrance"]').click()
    saturday = driver.find_element(By.CSS_SELECTOR, f'{window} input[data-day="sat"]')
    assert saturday.is_selected()
    until = driver.find_element(By.CSS_SELECTOR, f"{window} input.until")
    assert until.get_attribute("value") == "23:30"
    screenshot(driver, "residents")
    saturday.click()
    driver.find_element(By.ID, "grant-submit").click()
    wait(driver, lambda d: text_of(d, schedule) == WEEKDAYS)
    driver.find_element(By.CSS_SELECTOR, f"{courtyard} button[data-withdraw-right]").click()
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, courtyard))
    assert text_of(driver, schedule) == WEEKDAYS

    # The audit view (supervision page), filtered by the server on the action's prefix.
    driver.find_element(By.CSS_SELECTOR, '#tabs [data-tab="main"]').click()
    field = driver.find_element(By.ID, "audit-action")
    field.send_keys("right.")
    field.send_keys(Keys.TAB)  # a change event: the audit is asked again

    about_nina = f"user_id={seen['nina_id']}"

    def rights_audited(d: WebDriver) -> list[list[str]] | None:
        rows = [
            [str(td.text) for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in d.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
        ]
        if not rows or not all(r[3].startswith("right.") for r in rows):
            return None  # the unfiltered list is still shown
        mine = [r for r in rows if about_nina in r[6]]
        return mine if len(mine) == 4 else None

    rows = wait(driver, rights_audited)
    actor = f"operator:{admin['id']}"
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [  # newest first
        (actor, "right.revoke", "ap-a-courtyard", "granted"),
        (actor, "right.grant", "ap-a-entrance", "granted"),
        (actor, "right.grant", "ap-a-courtyard", "granted"),
        (actor, "right.grant", "ap-a-entrance", "granted"),
    ]
    return seen


def admin_revokes_a_pass_and_creates_staff(driver: WebDriver, pass_id: str) -> str:
    tab(driver, "passes")
    status = f'#all-passes tr[data-pass-row="{pass_id}"] [data-field=status]'
    wait(driver, lambda d: text_of(d, status) == "active")
    driver.find_element(By.CSS_SELECTOR, f'button[data-pass-revoke="{pass_id}"]').click()
    wait(driver, lambda d: text_of(d, status) == "revoked")
    assert not driver.find_elements(By.CSS_SELECTOR, f'button[data-pass-revoke="{pass_id}"]')
    owners = [str(e.text) for e in driver.find_elements(By.CSS_SELECTOR, "#all-passes td.owner")]
    assert sorted(owners) == ["anna", "boris"]
    screenshot(driver, "passes")

    tab(driver, "staff")
    demo = {"operator", "riverside-operator", "harbour-operator", "auditor"}
    wait(
        driver,
        lambda d: (
            demo
            <= {
                e.get_attribute("data-username")
                for e in d.find_elements(By.CSS_SELECTOR, "#staff tbody tr")
            }
        ),
    )
    type_into(driver, "#staff-username", "harbour-desk")
    type_into(driver, "#staff-name", "Harbour front desk")
    driver.find_element(By.CSS_SELECTOR, '#staff-roles input[value="operator"]').click()
    driver.find_element(By.CSS_SELECTOR, '#staff-sites input[value="site-harbour"]').click()
    driver.find_element(By.ID, "staff-submit").click()
    code = wait(driver, fresh(driver, "#staff-result [data-secret=activation_code]"))
    row = '#staff tr[data-username="harbour-desk"]'
    wait(driver, lambda d: text_of(d, f"{row} [data-field=status]") == "pending")
    assert text_of(driver, f"{row} [data-field=roles]") == "operator"
    assert text_of(driver, f"{row} [data-field=sites]") == "Harbour View"
    screenshot(driver, "staff")
    return str(code.text)


def admin_moves_the_resident_out(driver: WebDriver) -> str:
    tab(driver, "residents")
    wait(driver, lambda d: "nina" in column(d, "#residents", "username"))
    row = resident_row(driver, "nina")
    driver.find_element(By.CSS_SELECTOR, f"{row} button[data-move-out]").click()
    question = accept_confirmation(driver)
    wait(driver, lambda d: text_of(d, f"{row} [data-field=status]") == "moved out")
    assert not driver.find_elements(By.CSS_SELECTOR, f"{row} button[data-move-out]")
    return question


async def issue_pass(node: RunningNode, resident: str, door: str) -> str:
    now = datetime.now(UTC)
    async with node.http.post(
        f"{node.url}/api/v1/guest-passes",
        json={
            "access_point_ids": [door],
            "valid_from": now.isoformat(),
            "valid_until": (now + timedelta(hours=2)).isoformat(),
            "max_uses": 2,
        },
        headers=bearer(await node.token_for(resident)),
    ) as resp:
        assert resp.status == 201
        return str((await resp.json())["id"])


async def activate(node: RunningNode, username: str, code: str, password: str) -> dict[str, Any]:
    async with node.http.post(
        f"{node.url}/api/v1/activation",
        json={"username": username, "activation_code": code, "password": password},
    ) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def test_the_admin_invites_a_resident_grants_a_door_and_finds_it_in_the_audit(
    node: RunningNode, browser: webdriver.Chrome
) -> None:
    admin = node.credentials["operator"]
    pass_id = await issue_pass(node, "anna", "ap-a-entrance")
    await issue_pass(node, "boris", "ap-b-courtyard")  # listed too (organisation-wide)

    seen = await asyncio.to_thread(admin_manages_the_estate, browser, node.url, admin)
    assert "'anna' is taken" in seen["taken"]  # the problem document's detail

    # The secrets the page showed once work: the temporary password logs nina in; with the
    # activation code she chooses her own password, logs in with it and has her door.
    await login(
        node.http,
        node.url,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
        username="nina",
        password=seen["temporary_password"],
    )
    await activate(node, "nina", seen["activation_code"], "nina-correct-horse-battery")
    tokens = await login(
        node.http,
        node.url,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
        username="nina",
        password="nina-correct-horse-battery",
    )
    nina = bearer(str(tokens["access_token"]))
    async with node.http.get(f"{node.url}/api/v1/access-points", headers=nina) as resp:
        assert resp.status == 200
        assert [p["id"] for p in await resp.json()] == ["ap-a-entrance"]

    code = await asyncio.to_thread(admin_revokes_a_pass_and_creates_staff, browser, pass_id)
    async with node.http.get(
        f"{node.url}/api/v1/guest-passes/{pass_id}",
        headers=bearer(await node.token_for("anna")),
    ) as resp:
        assert (await resp.json())["status"] == "revoked"
    # The staff account's code enrols it, with the roles and the site chosen on the page.
    enrolled = await activate(node, "harbour-desk", code, "harbour-desk-correct-horse")
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(enrolled["totp_uri"]).query)["secret"]
    desk_tokens = await login(
        node.http,
        node.url,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
        username="harbour-desk",
        password="harbour-desk-correct-horse",
        totp_secret=secret[0],
    )
    async with node.http.get(
        f"{node.url}/admin/api/v1/me", headers=bearer(str(desk_tokens["access_token"]))
    ) as resp:
        assert resp.status == 200
        desk = await resp.json()
    assert (desk["roles"], desk["site_ids"]) == (["operator"], ["site-harbour"])
    assert "staff.read" not in desk["actions"] and "open" in desk["actions"]

    question = await asyncio.to_thread(admin_moves_the_resident_out, browser)
    assert question.startswith("Move nina out?")

    async def signed_out() -> bool:
        async with node.http.get(f"{node.url}/api/v1/access-points", headers=nina) as resp:
            return resp.status == 401

    await eventually(signed_out, within=5.0, what="the moved-out resident's token refused")

    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    # Only the refused invitation's answer (409, shown on the page): no CSP violation, no
    # script error.
    assert len(errors) == 1 and "409" in errors[0], errors


def site_operator_sees_its_site(
    driver: WebDriver, url: str, operator: dict[str, Any], anna_pass: str, boris_pass: str
) -> None:
    log_in(driver, url, operator)
    assert not displayed(driver, '#tabs [data-tab="staff-page"]')  # its role may not read staff
    assert displayed(driver, '#tabs [data-tab="residents-page"]')
    assert displayed(driver, "#open-form")  # operators open doors by hand

    tab(driver, "estate")
    wait(driver, fresh(driver, '#estate-tree [data-site="site-riverside"]'))
    sites = {e.get_attribute("data-site") for e in driver.find_elements(By.CSS_SELECTOR, ".site")}
    assert sites == {"site-riverside"}
    points = {
        e.get_attribute("data-point")
        for e in driver.find_elements(By.CSS_SELECTOR, "#estate-tree tr[data-point]")
    }
    assert points == {"ap-a-entrance", "ap-a-courtyard", "ap-parking"}
    assert not displayed(driver, "#apartment-form")  # no estate.manage

    tab(driver, "residents")
    wait(driver, lambda d: set(column(d, "#residents", "username")) == {"anna", "vera"})
    assert not displayed(driver, "#invite-form")
    assert not displayed(driver, "button[data-move-out]")
    driver.find_element(
        By.CSS_SELECTOR, f"{resident_row(driver, 'anna')} button[data-rights]"
    ).click()
    wait(driver, lambda d: text_of(d, "#rights-who") == "anna")
    wait(driver, fresh(driver, '#rights tr[data-right="ap-a-entrance"]'))
    rights = {
        e.get_attribute("data-right")
        for e in driver.find_elements(By.CSS_SELECTOR, "#rights tr[data-right]")
    }
    assert rights == {"ap-a-entrance", "ap-a-courtyard", "ap-parking"}
    assert not displayed(driver, "#grant-form")
    assert not displayed(driver, "button[data-withdraw-right]")

    tab(driver, "passes")
    wait(driver, fresh(driver, f'#all-passes tr[data-pass-row="{anna_pass}"]'))
    listed = {
        e.get_attribute("data-pass-row")
        for e in driver.find_elements(By.CSS_SELECTOR, "#all-passes tr[data-pass-row]")
    }
    assert listed == {anna_pass}  # not boris's, at the other site
    assert displayed(driver, f'button[data-pass-revoke="{anna_pass}"]')  # operators revoke passes
    assert boris_pass not in driver.page_source


def auditor_only_reads(
    driver: WebDriver, url: str, auditor: dict[str, Any], passes: set[str]
) -> None:
    log_in(driver, url, auditor)  # a fresh page: the operator's tokens went with the last one
    assert not displayed(driver, "#open-form")
    tab(driver, "staff")
    wait(driver, fresh(driver, '#staff tr[data-username="riverside-operator"]'))
    assert displayed(driver, "#staff tbody tr")
    assert not displayed(driver, "#staff-form")
    assert not displayed(driver, "#staff td.actions button")
    tab(driver, "passes")
    wait(
        driver,
        lambda d: (
            {
                e.get_attribute("data-pass-row")
                for e in d.find_elements(By.CSS_SELECTOR, "#all-passes tr[data-pass-row]")
            }
            == passes
        ),
    )
    assert not displayed(driver, "button[data-pass-revoke]")
    tab(driver, "residents")
    wait(driver, lambda d: {"anna", "boris", "vera"} == set(column(d, "#residents", "username")))
    assert not displayed(driver, "#invite-form")
    assert not displayed(driver, "button[data-move-out]")


async def test_a_site_operator_sees_only_its_site_and_an_auditor_only_reads(
    node: RunningNode, browser: webdriver.Chrome
) -> None:
    staff = {o["username"]: o for o in node.credentials["operators"]}
    anna_pass = await issue_pass(node, "anna", "ap-a-entrance")
    boris_pass = await issue_pass(node, "boris", "ap-b-entrance")
    await asyncio.to_thread(
        site_operator_sees_its_site,
        browser,
        node.url,
        staff["riverside-operator"],
        anna_pass,
        boris_pass,
    )
    await asyncio.to_thread(
        auditor_only_reads, browser, node.url, staff["auditor"], {anna_pass, boris_pass}
    )
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
