"""Home Assistant in a real browser: onboarding, then the DALY integration as a person uses it.

One Home Assistant (subprocess, own config folder, free port), one simulated balancer (in this
test's event loop) and Debian's Chromium driven by Playwright. Screenshots go to
artifacts/screenshots/e2e-*.png.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="playwright is not installed (requirements_test.txt)")

from playwright.async_api import Page, expect

from . import ui
from .conftest import HomeAssistantProcess, RunningSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_onboarding_and_dashboard(home_assistant: HomeAssistantProcess, page: Page, screenshots: Path) -> None:
    """A fresh Home Assistant is onboarded through its pages and shows its dashboard."""
    login = ui.Login()
    await ui.onboard(page, home_assistant.url, login, screenshots)
    await ui.expect_dashboard(page, login)
    await ui.shoot(page, screenshots, "e2e-02-dashboard-empty")


async def test_daly_balancer_through_the_ui(
    home_assistant: HomeAssistantProcess, simulator: RunningSimulator, page: Page, screenshots: Path
) -> None:
    """Add the integration from the UI, then read, set, switch and get a repair, as a person would."""
    sim = simulator.sim
    login = ui.Login()
    await ui.onboard(page, home_assistant.url, login, screenshots)
    await ui.expect_dashboard(page, login)

    # Settings → Devices & services → Add integration → DALY → serial or network bridge.
    device_name = await ui.add_daly_integration(page, home_assistant.url, simulator.url, screenshots)
    # Named after the module and the bridge it is reached through (two modules never share a name).
    assert device_name == f"DALY balancer {sim.config.cells}S ({simulator.url.removeprefix('socket://')})"

    # Every cell voltage on the device page is the simulator's (its clock is frozen: no drift).
    await ui.open_device_page(page, home_assistant.url, device_name)
    expected = sim.cell_voltages()
    for number, volts in enumerate(expected, start=1):
        row = ui.entity_row(page, "sensor", f"Cell {number} voltage")
        await expect(row).to_have_text(ui.showing(f"{volts:.3f} V"))
    await ui.shoot(page, screenshots, "e2e-05-device-page", full_page=True)

    # The balance turn-on voltage typed in the UI reaches the module's register.
    assert sim.value("balance_start_voltage") == pytest.approx(3.3)
    await ui.set_number(page, "Balance turn-on voltage", "3.45")
    await wait_for(lambda: sim.value("balance_start_voltage") == pytest.approx(3.45), "balance turn-on voltage 3.45 V")
    await expect(ui.entity_row(page, "number", "Balance turn-on voltage").locator("input")).to_have_value("3.45")

    # The balancer switch in the UI turns the module's balancer off.
    assert sim.value("balancer_enabled") is True
    balancer = ui.entity_row(page, "toggle", "Balancer")
    switch = balancer.get_by_role("switch")
    await expect(switch).to_be_checked()
    await balancer.locator("ha-entity-toggle").click()  # the drawn switch, over the hidden checkbox
    await wait_for(lambda: sim.value("balancer_enabled") is False, "balancer switched off")
    await expect(switch).not_to_be_checked()

    # A cell far outside LiFePO4's plausible range raises the integration's repair issue.
    sim.set_cell_voltage(3, 4.9)
    cell_3 = ui.entity_row(page, "sensor", "Cell 3 voltage")
    await expect(cell_3).to_have_text(ui.showing("4.900 V"), timeout=40_000)
    await ui.open_repairs(page)
    issue = page.get_by_text(f"{device_name}: cell voltage implausible")
    await expect(issue).to_be_visible(timeout=30_000)
    await ui.shoot(page, screenshots, "e2e-06-repairs")

    # The dashboard shows the module.
    await ui.open_dashboard_devices(page, device_name)
    await expect(ui.entity_row(page, "sensor", "Cell 3 voltage")).to_have_text(ui.showing("4.900 V"))
    await ui.shoot(page, screenshots, "e2e-07-dashboard", full_page=True)

    # Plausible again: the issue clears itself.
    sim.release_cell(3)
    await ui.open_repairs(page)
    await expect(issue).to_be_hidden(timeout=40_000)
    assert not home_assistant.integration_errors(), "\n".join(home_assistant.integration_errors())


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll the simulator until ``condition`` holds (the UI's writes reach it asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"the simulator never saw: {what}")
        await asyncio.sleep(0.2)
