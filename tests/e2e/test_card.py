"""The cells card in a real browser: the card the integration ships, on a dashboard and in its editor.

Same set-up as test_browser.py (one Home Assistant, one simulated 16S balancer with a frozen clock,
Debian's Chromium); the integration is added through the UI, which is all a user does: the card
comes with it. Screenshots of the card go to artifacts/screenshots/e2e-08-card-*.png.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
import re

import pytest

pytest.importorskip("playwright", reason="playwright is not installed (requirements_test.txt)")

from playwright.async_api import ConsoleMessage, Locator, Page, Route, expect

from aiodalybalancer.tools.pack import weak_cell_simulator
from aiodalybalancer.tools.simulator import Fault, FaultPlan, SimulatorConfig, serve_tcp
from tests.scripts import load_script

from . import ui
from .conftest import FrozenClock, HomeAssistantProcess, RunningSimulator, loud_skip, restart

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

CARD = "daly-balancer-card"
#: A poll every 10 s, a failed one after the client's retries: room for two of each.
FOLLOW_TIMEOUT = 60_000
PHONE = {"width": 390, "height": 844}
#: Home Assistant reloads an entry 30 s after one of its entities is enabled.
RELOAD_TIMEOUT = 120_000


class ConsoleErrors:
    """Errors the page logs or throws from the moment this starts listening."""

    def __init__(self, page: Page) -> None:
        """Listen to ``page``."""
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


async def module_in_ui(
    home_assistant: HomeAssistantProcess, simulator: RunningSimulator, page: Page, screenshots: Path
) -> str:
    """Onboard, add the simulated module through the UI; the module's device name."""
    login = ui.Login()
    await ui.onboard(page, home_assistant.url, login, screenshots)
    await ui.expect_dashboard(page, login)
    return await ui.add_daly_integration(page, home_assistant.url, simulator.url, screenshots)


async def cells_shown(card: Locator) -> list[tuple[int, float]]:
    """(cell number, voltage) of every bar the card draws, left to right."""
    pairs = await card.locator(".cell").evaluate_all(
        "(cells) => cells.map((cell) => [Number(cell.dataset.cell), Number(cell.dataset.voltage)])"
    )
    return [(int(number), float(volts)) for number, volts in pairs]


def extreme_cells(volts: tuple[float, ...]) -> tuple[str, str]:
    """The numbers of the lowest and highest cells (the first of equals), as the card marks them."""
    return str(volts.index(min(volts)) + 1), str(volts.index(max(volts)) + 1)


async def _late(route: Route) -> None:
    """Serve a request a second late (a slow link or a busy Home Assistant)."""
    await asyncio.sleep(1.0)
    await route.continue_()


async def shoot_card(page: Page, card: Locator, screenshots: Path, name: str) -> None:
    """The card alone, light and dark (Home Assistant's default theme follows the browser)."""
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        await expect(card.locator("ha-card")).to_be_visible()
        # ha-card eases its colours into the new scheme: shoot once that transition is over.
        await page.wait_for_function(
            "(card) => card.shadowRoot.querySelector('ha-card').getAnimations().length === 0",
            arg=await card.element_handle(),
        )
        await card.screenshot(path=str(screenshots / f"e2e-08-card-{name}-{scheme}.png"))
    await page.emulate_media(color_scheme="light")


async def test_card_draws_every_cell_and_follows_the_module(
    home_assistant: HomeAssistantProcess, simulator: RunningSimulator, page: Page, screenshots: Path
) -> None:
    """The card loads cleanly, draws the module's cells, marks lowest and highest, and follows it."""
    sim = simulator.sim
    device_name = await module_in_ui(home_assistant, simulator, page, screenshots)
    console = ConsoleErrors(page)
    device = await ui.device_id(page, device_name)
    await ui.show_cards_dashboard(page, home_assistant.url, [{"type": f"custom:{CARD}", "device_id": device}])
    card = page.locator(CARD)

    # One bar per cell, in order, each with the simulator's voltage (its clock is frozen).
    bars = card.locator(".cell")
    await expect(bars).to_have_count(sim.config.cells)
    volts = sim.cell_voltages()
    assert await cells_shown(card) == [(number, v) for number, v in enumerate(volts, start=1)]
    await expect(card.locator(".card-header")).to_have_text(device_name)

    lowest, highest = extreme_cells(volts)
    await expect(card.locator(".cell.lowest")).to_have_count(1)
    await expect(card.locator(".cell.lowest")).to_have_attribute("data-cell", lowest)
    await expect(card.locator(".cell.highest")).to_have_count(1)
    await expect(card.locator(".cell.highest")).to_have_attribute("data-cell", highest)
    # The delta is coloured against the module's turn-on difference.
    delta_mv = round((max(volts) - min(volts)) * 1000)
    turn_on_mv = round(float(sim.value("balance_start_delta")) * 1000)  # type: ignore[arg-type]
    assert delta_mv < turn_on_mv, "the simulated pack starts below the turn-on difference"
    await expect(card.locator(".fact.delta")).to_have_class(ui.word("under"))
    await expect(card.locator(".chip.balancing")).to_contain_text("no")

    await shoot_card(page, card, screenshots, "desktop")
    await page.set_viewport_size(PHONE)
    await shoot_card(page, card, screenshots, "phone")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # The simulator pulls cell 9 down: the card marks it lowest, the delta now exceeds the turn-on
    # difference, and the module starts balancing.
    sim.set_cell_voltage(9, 3.05)
    lowest_bar = card.locator(".cell.lowest")
    await expect(lowest_bar).to_have_attribute("data-cell", "9", timeout=FOLLOW_TIMEOUT)
    await expect(lowest_bar.locator(".value")).to_have_text("3.050")
    await expect(card.locator(".fact.delta")).to_have_class(ui.word("over"))
    assert sim.balancing
    await expect(card.locator(".chip.balancing")).to_contain_text("yes", timeout=FOLLOW_TIMEOUT)

    # A renamed entity keeps its place: the card numbers cells from the entity registry's unique
    # ids, not from entity ids (this one would sort last).
    await ui.call_ws(
        page,
        {
            "type": "config/entity_registry/update",
            "entity_id": f"sensor.{ui.slug(device_name)}_cell_2_voltage",
            "new_entity_id": "sensor.zz_second_cell",
        },
    )
    await expect(card.locator(".cell").nth(1)).to_have_attribute("data-entity", "sensor.zz_second_cell")
    await expect(card.locator(".cell").nth(1)).to_have_attribute("data-cell", "2")

    # Tapping a bar opens that cell's more-info dialog (its history).
    await lowest_bar.click()
    dialog = page.locator("ha-more-info-dialog")
    await expect(dialog.get_by_text("Cell 9 voltage").first).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog.get_by_text("Cell 9 voltage")).to_have_count(0)

    # Which cells balance: the module's per-cell flags (disabled by default) once enabled; Home
    # Assistant reloads the entry 30 s after such a change. The module balances 9 and the highest.
    volts = sim.cell_voltages()
    balancing = {"9", extreme_cells(volts)[1]}
    for number in balancing:
        entity_id = f"binary_sensor.{ui.slug(device_name)}_cell_{number}_balancing"
        await ui.call_ws(page, {"type": "config/entity_registry/update", "entity_id": entity_id, "disabled_by": None})
    balancing_bars = card.locator(".cell.balancing")
    await expect(balancing_bars).to_have_count(2, timeout=RELOAD_TIMEOUT)
    assert set(await balancing_bars.evaluate_all("(cells) => cells.map((cell) => cell.dataset.cell)")) == balancing

    # The module stops answering: the card says so and draws no stale bars; then it is back.
    sim.faults = FaultPlan(rate=1.0, kinds=(Fault.DROP,))
    await expect(card.get_by_text(f"{device_name} is unavailable")).to_be_visible(timeout=FOLLOW_TIMEOUT)
    await expect(bars).to_have_count(0)
    sim.faults = FaultPlan()
    await expect(bars).to_have_count(sim.config.cells, timeout=FOLLOW_TIMEOUT)

    # A browser in German gets the card in German (it follows Home Assistant's language), on a
    # cold load in which Home Assistant's app bundle arrives late: the card module then runs
    # before Home Assistant swaps in its scoped element registry, and must define itself again
    # on the new registry (without that, the card stays "Custom element doesn't exist").
    assert page.context.browser is not None
    german = await page.context.browser.new_context(locale="de-DE", timezone_id="UTC")
    try:
        other = await german.new_page()
        await other.route("**/frontend_latest/app.*.js", _late)
        await other.goto(f"{home_assistant.url}/daly-battery/cells")
        login = ui.Login()
        await other.locator("input[name=username]").fill(login.username)
        await other.locator("input[name=password]").fill(login.password)
        await other.keyboard.press("Enter")
        try:
            await expect(other.locator(CARD).locator(".fact.low .label")).to_have_text("Niedrigste")
        except AssertionError:
            defined = await other.evaluate(f"!!customElements.get('{CARD}')")
            await other.screenshot(path=str(screenshots / "german-failure.png"))
            raise AssertionError(f"card defined in the German page: {defined}") from None
        await expect(other.locator(CARD).locator(".cell")).to_have_count(sim.config.cells)
    finally:
        await german.close()

    # Readings as Home Assistant shows them everywhere else: the user's number format (profile,
    # here a decimal comma) and each entity's display precision (two decimals for cell 9).
    await ui.call_ws(
        page,
        {
            "type": "config/entity_registry/update",
            "entity_id": f"sensor.{ui.slug(device_name)}_cell_9_voltage",
            "options_domain": "sensor",
            "options": {"display_precision": 2},
        },
    )
    await ui.call_ws(
        page,
        {
            "type": "frontend/set_user_data",
            "key": "language",
            "value": {"language": "en", "number_format": "decimal_comma"},
        },
    )
    await expect(lowest_bar.locator(".value")).to_have_text("3,05", timeout=FOLLOW_TIMEOUT)
    await expect(card.locator(".fact.low .reading")).to_have_text("9 · 3,05 V")
    await expect(card.locator(".cell").first.locator(".value")).to_have_text(re.compile(r"^\d,\d{3}$"))
    await expect(card.locator(".fact.pack .reading")).to_have_text(re.compile(r"^\d+,\d V$"))
    await ui.call_ws(page, {"type": "frontend/set_user_data", "key": "language", "value": {"language": "en"}})

    # A device of another integration (a hand-written YAML card): the card says it is not a
    # DALY balancer instead of calling it unavailable.
    other_device = await page.evaluate(
        "(id) => Object.values(document.querySelector('home-assistant').hass.devices)"
        ".filter((device) => device.id !== id && device.name).map((device) => [device.id, device.name])[0]",
        device,
    )
    assert other_device, "Home Assistant has a device of another integration"
    other_id, other_name = other_device
    await ui.show_cards_dashboard(page, home_assistant.url, [{"type": f"custom:{CARD}", "device_id": other_id}])
    await expect(page.locator(CARD).get_by_text(f"{other_name} is not a DALY balancer")).to_be_visible()

    assert console.errors == []
    # The one error logged is the silence this test caused.
    unexpected = [line for line in home_assistant.integration_errors() if "does not answer" not in line]
    assert not unexpected, "\n".join(unexpected)


async def test_card_editor_creates_a_working_card(
    home_assistant: HomeAssistantProcess, simulator: RunningSimulator, page: Page, screenshots: Path
) -> None:
    """The card is in the card picker; its editor offers only DALY devices and makes a card that works."""
    sim = simulator.sim
    device_name = await module_in_ui(home_assistant, simulator, page, screenshots)
    await ui.show_cards_dashboard(page, home_assistant.url, [])

    editor = await ui.add_card_from_picker(page, "DALY balancer cells")
    # From here on, no errors (the card picker's own previews of other cards fetch from the
    # internet, which this machine does not reach, and log errors of Home Assistant's).
    console = ConsoleErrors(page)
    # The card's stub picks the only DALY module; the preview draws it.
    await expect(editor.locator(f"{CARD} .cell")).to_have_count(sim.config.cells)
    # The device picker lists this integration's devices only (Home Assistant has others).
    others = await page.evaluate(
        "(name) => Object.values(document.querySelector('home-assistant').hass.devices)"
        ".filter((device) => device.name !== name).length",
        device_name,
    )
    assert others > 0
    assert await ui.device_picker_options(editor, device_name) == [device_name]
    options = editor.locator("ha-picker-combo-box ha-combo-box-item")
    await options.filter(has_text=device_name).click()
    await expect(options).to_have_count(0)
    title = editor.locator("ha-selector-text input")
    await title.press_sequentially("House battery")
    await expect(title).to_have_value("House battery")
    await expect(editor.locator(f"{CARD} .card-header")).to_have_text("House battery")
    await ui.shoot(page, screenshots, "e2e-09-card-editor")
    await editor.get_by_role("button", name="Save").click()

    # The new card is on the dashboard (and stays there after a reload): the title, every cell.
    await page.get_by_role("button", name="Done").click()
    await page.reload()
    await ui.settled(page)
    card = page.locator(CARD)
    await expect(card.locator(".card-header")).to_have_text("House battery")
    await expect(card.locator(".cell")).to_have_count(sim.config.cells)
    saved = await ui.call_ws(page, {"type": "lovelace/config", "url_path": "daly-battery"})
    device = await ui.device_id(page, device_name)
    assert saved["views"][0]["cards"] == [{"type": f"custom:{CARD}", "device_id": device, "title": "House battery"}]
    assert console.errors == []


#: The insight entities the integration keeps per module (translation keys), shown beside the card.
INSIGHT_KEYS = (
    "top_difference_today",
    "top_difference_yesterday",
    "difference_trend",
    "balancing_time_today",
    "weakest_cell",
    "highest_cell_at_top",
    "not_keeping_up",
)
PACK_DAYS = 14


async def insight_entities(page: Page, device: str) -> dict[str, str]:
    """The device's insight entities by translation key (those Home Assistant has)."""
    found: dict[str, str] = await page.evaluate(
        "([device, keys]) => Object.fromEntries(Object.values(document.querySelector('home-assistant').hass.entities)"
        ".filter((e) => e.device_id === device && keys.includes(e.translation_key))"
        ".map((e) => [e.translation_key, e.entity_id]))",
        [device, list(INSIGHT_KEYS)],
    )
    return found


async def test_card_and_insights_after_two_weeks(
    home_assistant: HomeAssistantProcess,
    page: Page,
    screenshots: Path,
    socket_enabled: None,
    pytestconfig: pytest.Config,
) -> None:
    """A pack with a weak cell, 14 days in: the card shows the trend's arrow and marks the weak cell,
    beside the insight entities (screenshots e2e-20-insights*.png, the README's)."""
    clock = FrozenClock()
    sim = weak_cell_simulator(PACK_DAYS, SimulatorConfig(cells=16), clock=clock)
    server = await serve_tcp(sim)
    try:
        simulator = RunningSimulator(sim, clock, server.url)
        device_name = await module_in_ui(home_assistant, simulator, page, screenshots)
        device = await ui.device_id(page, device_name)
        entities = await insight_entities(page, device)
        if "difference_trend" not in entities:
            loud_skip(pytestconfig, "this integration has no pack insight entities (difference_trend) yet")
        # Home Assistant files each poll under its own date, so it never saw the days the pack
        # lived: scripts/run's helper writes them into the module's store while it is stopped.
        seeded: list[str] = []
        await restart(
            home_assistant,
            lambda: seeded.extend(
                load_script("ha_config/ha_setup.py").seed_insights(home_assistant.config_dir, server.url, PACK_DAYS)
            ),
        )
        assert len(seeded) == 1
        await page.goto(f"{home_assistant.url}/")
        await ui.settled(page)
        # The dashboard below is loaded anew, once the card is among the index page's modules.
        await ui.started(page)

        cards = [
            {"type": f"custom:{CARD}", "device_id": device},
            {"type": "entities", "entities": [entities[key] for key in INSIGHT_KEYS if key in entities]},
        ]
        await ui.show_cards_dashboard(page, home_assistant.url, cards)
        card = page.locator(CARD)
        await expect(card.locator(".cell")).to_have_count(sim.config.cells, timeout=FOLLOW_TIMEOUT)
        # The model's weak cell (cell 5, 85 Ah against about 100) is found, and after two weeks
        # with the balancer on the top-of-charge difference has a trend.
        await expect(card.locator(".cell.weakest")).to_have_attribute("data-cell", "5", timeout=FOLLOW_TIMEOUT)
        trend = card.locator(".fact.trend")
        await expect(trend).to_have_class(re.compile(r"\b(up|down|flat)\b"))
        await expect(trend.locator(".arrow")).to_have_count(1)
        await expect(trend.locator(".reading")).to_contain_text("mV")
        await ui.shoot(page, screenshots, "e2e-20-insights")
        await shoot_card(page, card, screenshots, "insights-desktop")
        await page.set_viewport_size({"width": 375, "height": 844})
        await shoot_card(page, card, screenshots, "insights-phone")
    finally:
        await server.close()
