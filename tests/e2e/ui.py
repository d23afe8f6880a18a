"""What a person does in Home Assistant's web UI, as Playwright steps.

Home Assistant's frontend is made of web components; Playwright's role, text and CSS locators
reach into their (open) shadow roots. Form fields are found by their schema name
(``input[name=username]``), buttons by their accessible name: both are what Home Assistant
shows, not internals of this integration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import re
from typing import Any

from playwright.async_api import Locator, Page, expect


@dataclass(frozen=True)
class Login:
    """The first user, made during onboarding."""

    name: str = "E2E Tester"
    username: str = "tester"
    password: str = "e2e-Secret-1234"


async def shoot(page: Page, folder: Path, name: str, full_page: bool = False) -> Path:
    """Save a screenshot of the page as ``folder/name.png``."""
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def onboard(page: Page, base_url: str, login: Login, screenshots: Path) -> None:
    """Go through onboarding: user, home location, country, analytics, finish."""
    await page.goto(f"{base_url}/")
    await expect(page).to_have_url(re.compile(r"/onboarding\.html"))
    welcome = page.get_by_role("button", name="Create my smart home")
    await expect(welcome).to_be_visible()
    await shoot(page, screenshots, "e2e-01-onboarding-welcome")
    await welcome.click()

    await page.locator("input[name=name]").fill(login.name)
    await page.locator("input[name=username]").fill(login.username)
    await page.locator("input[name=password]").fill(login.password)
    await page.locator("input[name=password_confirm]").fill(login.password)
    await page.get_by_role("button", name="Create account").click()

    # Home location (the map's default point), then the country (preset from the language).
    await expect(page.get_by_text("Home location")).to_be_visible()
    await page.get_by_role("button", name="Next").click()
    await expect(page.get_by_text("the country your home is in")).to_be_visible()
    await page.get_by_role("button", name="Next").click()
    # Analytics: everything stays off.
    await expect(page.get_by_text("Help us help you")).to_be_visible()
    await page.get_by_role("button", name="Next").click()
    await expect(page.get_by_text("All set!")).to_be_visible()
    await page.get_by_role("button", name="Finish").click()
    await expect(page).to_have_url(re.compile(r"/(home|lovelace)(/|$)"), timeout=60_000)


async def expect_dashboard(page: Page, login: Login) -> None:
    """The signed-in UI is there: the default dashboard greets the user, the sidebar has Settings."""
    await expect(page.get_by_role("heading", name=f"Welcome {login.name}")).to_be_visible(timeout=60_000)
    await expect(page.get_by_text("Settings").first).to_be_visible()
    await settled(page)


async def settled(page: Page) -> None:
    """Wait until the launch screen (logo and "Loading…") has faded out of the way."""
    await expect(page.locator("#ha-launch-screen")).to_have_count(0, timeout=60_000)


async def started(page: Page) -> None:
    """Wait until Home Assistant has finished starting: every integration is set up.

    Home Assistant serves its UI early in its start, before the integrations' set-up, and writes
    the modules they add (the cells card) into the index page when the page is requested: its
    frontend never loads one added later. After a restart, a page that should show the card must
    be loaded anew once this returns.
    """
    await page.wait_for_function(
        "() => document.querySelector('home-assistant')?.hass?.config?.state === 'RUNNING'", timeout=120_000
    )


async def add_daly_integration(page: Page, base_url: str, port_or_url: str, screenshots: Path) -> str:
    """Settings → Devices & services → Add integration → DALY → serial/bridge → the URL → finish.

    Returns the device name the flow proposed ("DALY balancer 16S (127.0.0.1:8899)").
    """
    await page.goto(f"{base_url}/config/integrations/dashboard")
    await settled(page)
    await page.get_by_role("button", name="Add integration").click()
    search = page.get_by_placeholder("Search for a brand name")
    await expect(search).to_be_visible()
    await search.fill("DALY")
    await page.get_by_text("DALY Smart Active Balancer").last.click()
    await expect(page.get_by_text("Connect a DALY active balancer")).to_be_visible()
    await expect(page.get_by_text("Bluetooth (DALY dongle")).to_be_visible()
    await page.get_by_text("Serial port or network bridge").first.click()

    await expect(page.get_by_text("Port or URL")).to_be_visible()
    await page.get_by_text("Port or URL").first.click()
    # The port picker lists detected ports and takes a typed value as a custom item.
    search = page.get_by_placeholder("Add custom item")
    await search.fill(port_or_url)
    await page.get_by_text("Add custom item").click()
    await expect(page.get_by_text(port_or_url)).to_be_visible()
    await shoot(page, screenshots, "e2e-03-config-flow-serial")
    await page.get_by_role("button", name="Submit").click()

    # The flow reads the module, creates the entry, and offers to name the device.
    await expect(page.get_by_text("Name and assign")).to_be_visible(timeout=60_000)
    device_name = await page.locator("ha-input").filter(has_text="Device name").locator("input").input_value()
    await shoot(page, screenshots, "e2e-04-config-flow-done")
    await page.get_by_role("button", name=re.compile(r"finish", re.IGNORECASE)).click()
    await expect(page.get_by_text("Name and assign")).to_be_hidden()
    return device_name


async def open_device_page(page: Page, base_url: str, device_name: str) -> None:
    """Settings → Devices & services → DALY → the device."""
    await page.goto(f"{base_url}/config/integrations/integration/daly_active_balance")
    await settled(page)
    await page.get_by_text(device_name).last.click()
    await expect(page).to_have_url(re.compile(r"/config/devices/device/"))
    await expect(page.get_by_text("Sensors", exact=True)).to_be_visible()


def entity_row(page: Page, kind: str, name: str) -> Locator:
    """The device page's row of entity ``name`` (``kind``: sensor, toggle, number, select)."""
    return page.locator(f"hui-{kind}-entity-row").filter(has_text=re.compile(rf"(^|\W){re.escape(name)}(\W|$)"))


def showing(state: str) -> re.Pattern[str]:
    """A row's text shows ``state`` (e.g. "3.321 V") as a whole word, beside the entity's name."""
    return re.compile(rf"(^|\s){re.escape(state)}(\s|$)")


async def set_number(page: Page, name: str, value: str) -> None:
    """Type a value into a number entity's box on the device page and commit it (Enter)."""
    field = entity_row(page, "number", name).locator("input")
    await field.fill(value)
    await field.press("Enter")


async def open_repairs(page: Page) -> None:
    """Settings (the sidebar), where Home Assistant lists the open repair issues first."""
    await page.get_by_text("Settings", exact=True).first.click()
    await expect(page).to_have_url(re.compile(r"/config/dashboard"))
    await settled(page)


async def open_dashboard_devices(page: Page, device_name: str) -> None:
    """Overview → the "Devices" tile, where devices without an area are shown with their entities."""
    await page.get_by_text("Overview", exact=True).first.click()
    await expect(page).to_have_url(re.compile(r"/home/"))
    await page.get_by_role("button", name="Devices", exact=True).click()
    await expect(page.get_by_text(device_name).first).to_be_visible()
    await settled(page)


async def call_ws(page: Page, message: dict[str, Any]) -> Any:
    """Send a websocket command as the signed-in user, through the page's own connection."""
    script = """(message) => document.querySelector("home-assistant").hass.callWS(message)
        .catch((error) => { throw new Error(JSON.stringify(error)); })"""
    return await page.evaluate(script, message)


async def device_id(page: Page, device_name: str) -> str:
    """The device registry id of the device called ``device_name``."""
    found = await page.evaluate(
        "(name) => Object.values(document.querySelector('home-assistant').hass.devices)"
        ".filter((device) => device.name === name).map((device) => device.id)",
        device_name,
    )
    assert len(found) == 1, found
    return str(found[0])


async def show_cards_dashboard(page: Page, base_url: str, cards: list[dict[str, Any]]) -> None:
    """A dashboard ("Battery", in the sidebar) holding ``cards``, opened.

    Made through the websocket commands the dashboard editor itself sends.
    """
    dashboards = await call_ws(page, {"type": "lovelace/dashboards/list"})
    if not any(dashboard["url_path"] == "daly-battery" for dashboard in dashboards):
        await call_ws(
            page,
            {
                "type": "lovelace/dashboards/create",
                "url_path": "daly-battery",
                "title": "Battery",
                "mode": "storage",
                "show_in_sidebar": True,
                "require_admin": False,
            },
        )
    view = {"title": "Cells", "path": "cells", "cards": cards}
    await call_ws(page, {"type": "lovelace/config/save", "url_path": "daly-battery", "config": {"views": [view]}})
    await page.goto(f"{base_url}/daly-battery/cells")
    await settled(page)


def slug(name: str) -> str:
    """The object id Home Assistant makes of a name ("DALY balancer 16S" → "daly_balancer_16s")."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def word(text: str) -> re.Pattern[str]:
    """``text`` as a whole word, e.g. one class among an element's classes."""
    return re.compile(rf"(^|\s){re.escape(text)}(\s|$)")


async def add_card_from_picker(page: Page, card_name: str) -> Locator:
    """Edit dashboard → Add card → By card → search ``card_name`` → pick it; the card's editor."""
    await page.get_by_role("button", name="Edit dashboard").click()
    await page.get_by_role("button", name="Add card").click()
    await page.get_by_role("tab", name="By card").click()
    await page.get_by_placeholder("Search cards").fill(card_name)
    # Each card in the picker is a preview under an overlay that takes the click.
    await page.locator("hui-card-picker .card").filter(has_text=card_name).click()
    editor = page.locator("hui-dialog-edit-card")
    await expect(editor.get_by_text(f"{card_name} card configuration")).to_be_visible()
    return editor


async def device_picker_options(editor: Locator, current: str) -> list[str]:
    """Open the device picker that shows ``current`` and return the devices it offers (names)."""
    await editor.locator("ha-picker-field").filter(has_text=current).click()
    items = editor.locator("ha-picker-combo-box ha-combo-box-item")
    await expect(items.first).to_be_visible()
    return [text.splitlines()[0].strip() for text in await items.all_inner_texts()]
