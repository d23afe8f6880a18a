"""The cells card's pack insights in Chromium, fed a stand-in ``hass`` object (no Home Assistant).

The card reads the insight entities by their translation keys (``difference_trend``,
``top_difference_yesterday``, ``weakest_cell``): the trend with its arrow (up: a growing
imbalance, down: converging, flat), formatted as Home Assistant formats the entity, and the weakest
cell marked on its bar. Without these entities (an older integration, or disabled) the card draws
nothing more. A stand-in ``hass`` makes each case exact and quick; tests/e2e/test_card.py runs the
card against a real Home Assistant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright", reason="playwright is not installed (requirements_test.txt)")

from playwright.async_api import Locator, Page, expect

from custom_components.daly_active_balance.card import CARD_FILE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CARD = "daly-balancer-card"
DEVICE = "dev1"
DOMAIN = "daly_active_balance"
CELLS = (3.301, 3.305, 3.299, 3.310, 3.250, 3.302, 3.304, 3.298, 3.306, 3.300, 3.303, 3.297, 3.309, 3.301, 3.302, 3.300)
PHONE_WIDTH = 375

#: A page with Home Assistant's ha-card stood in by a plain element, and a ``hass`` builder whose
#: ``formatEntityStateToParts`` formats with a decimal comma, as a user's number format would.
PAGE = """<!doctype html><html><head><style>body { margin: 16px; font-family: sans-serif; }</style>
<script>
customElements.define("ha-card", class extends HTMLElement {
  connectedCallback() { this.style.display = "block"; this.style.border = "1px solid #ccc"; this.style.borderRadius = "12px"; }
});
window.makeHass = (states, language) => {
  const entities = {};
  for (const [entityId, s] of Object.entries(states)) {
    entities[entityId] = { entity_id: entityId, device_id: "dev1", platform: "daly_active_balance", translation_key: s.key };
  }
  const stateObjs = {};
  for (const [entityId, s] of Object.entries(states)) {
    stateObjs[entityId] = { entity_id: entityId, state: s.state, attributes: s.attributes || {} };
  }
  return {
    language,
    locale: { language, number_format: "decimal_comma" },
    devices: { dev1: { id: "dev1", name: "DALY balancer 16S" } },
    entities,
    states: stateObjs,
    callWS: async () => ({}),
    formatEntityStateToParts: (stateObj) => {
      const parts = [{ type: "value", value: stateObj.state.replace(".", ",") }];
      const unit = stateObj.attributes.unit_of_measurement;
      if (unit) parts.push({ type: "literal", value: " " }, { type: "unit", value: unit });
      return parts;
    },
  };
};
</script></head><body></body></html>"""


def module_states(**insights: str | None) -> dict[str, dict[str, Any]]:
    """The module's cell and pack entities, plus the insight entities given (key → state)."""
    states: dict[str, dict[str, Any]] = {}
    for number, volts in enumerate(CELLS, start=1):
        states[f"sensor.daly_cell_{number}_voltage"] = {
            "key": "cell_voltage",
            "state": f"{volts:.3f}",
            "attributes": {"unit_of_measurement": "V"},
        }
    states["sensor.daly_pack_voltage"] = {
        "key": "pack_voltage",
        "state": f"{sum(CELLS):.1f}",
        "attributes": {"unit_of_measurement": "V"},
    }
    units = {"difference_trend": "mV/d", "top_difference_yesterday": "mV", "weakest_cell": None}
    for key, state in insights.items():
        if state is None:
            continue
        unit = units[key]
        states[f"sensor.daly_{key}"] = {
            "key": key,
            "state": state,
            "attributes": {"unit_of_measurement": unit} if unit else {"lowest_at_bottom": {"5": 12}},
        }
    return states


async def show(page: Page, states: dict[str, dict[str, Any]], language: str = "en") -> Locator:
    """A fresh page with the card for device ``dev1`` and ``states``."""
    await page.set_content(PAGE)
    await page.add_script_tag(content=CARD_FILE.read_text(encoding="utf-8"), type="module")
    await page.evaluate(
        """([card, states, language]) => {
          const element = document.createElement(card);
          element.setConfig({ device_id: "dev1" });
          element.hass = window.makeHass(states, language);
          document.body.appendChild(element);
        }""",
        [CARD, states, language],
    )
    card = page.locator(CARD)
    await expect(card.locator(".cell")).to_have_count(len(CELLS))
    return card


async def test_growing_imbalance_and_weakest_cell(page: Page, screenshots: Path) -> None:
    """An upward trend shows an up arrow, Home Assistant's formatting and yesterday's top difference;
    the weakest cell's bar is marked and says why."""
    card = await show(page, module_states(difference_trend="1.8", top_difference_yesterday="42", weakest_cell="5"))
    trend = card.locator(".fact.trend")
    await expect(trend).to_have_class("fact trend up")
    await expect(trend.locator(".label")).to_have_text("Top-of-charge trend")
    await expect(trend.locator(".arrow")).to_have_text("↑")
    await expect(trend.locator(".reading")).to_contain_text("+1,8 mV/d")
    await expect(trend.locator("small")).to_have_text("growing imbalance · yesterday 42 mV")
    await expect(trend).to_have_attribute("data-entity", "sensor.daly_difference_trend")

    weakest = card.locator(".cell.weakest")
    await expect(weakest).to_have_count(1)
    await expect(weakest).to_have_attribute("data-cell", "5")
    await expect(weakest).to_have_attribute(
        "title", "Cell 5: 3,250 V, Lowest, weakest cell (most often lowest at the bottom of charge)"
    )
    await expect(card.locator(".fact.weakest .reading")).to_have_text("5 · 3,250 V")
    await expect(card.locator(".fact.weakest")).to_have_attribute("data-entity", "sensor.daly_weakest_cell")

    # Phone width: the card fits, nothing spills sideways.
    await page.set_viewport_size({"width": PHONE_WIDTH, "height": 800})
    overflow = await card.evaluate(
        "(card) => [...card.shadowRoot.querySelectorAll('.facts, .cells')]"
        ".map((node) => node.scrollWidth - node.clientWidth)"
    )
    assert overflow == [0, 0, 0], overflow
    await card.screenshot(path=str(screenshots / "e2e-20-card-insights-phone.png"))


@pytest.mark.parametrize(
    ("state", "direction", "arrow", "text"),
    [
        ("-2.4", "down", "↓", "-2,4 mV/d"),
        ("0.1", "flat", "→", "+0,1 mV/d"),
        ("-0.1", "flat", "→", "-0,1 mV/d"),
        ("0.2", "up", "↑", "+0,2 mV/d"),
    ],
)
async def test_trend_arrow(page: Page, state: str, direction: str, arrow: str, text: str) -> None:
    """Down is converging; within a reading's step over a week it is flat."""
    card = await show(page, module_states(difference_trend=state))
    trend = card.locator(".fact.trend")
    await expect(trend).to_have_class(f"fact trend {direction}")
    await expect(trend.locator(".arrow")).to_have_text(arrow)
    await expect(trend.locator(".reading")).to_contain_text(text)
    await expect(card.locator(".fact.weakest")).to_have_count(0)  # no such entity: no fact


async def test_too_few_days(page: Page) -> None:
    """Entities without a value yet: the card says so, and marks no cell."""
    card = await show(page, module_states(difference_trend="unknown", weakest_cell="unknown"))
    trend = card.locator(".fact.trend")
    await expect(trend).to_have_class("fact trend unknown")
    await expect(trend.locator(".arrow")).to_have_count(0)
    await expect(trend.locator(".reading")).to_have_text("–needs 3 days at the top")
    await expect(card.locator(".fact.weakest .reading")).to_have_text("–not yet known")
    await expect(card.locator(".cell.weakest")).to_have_count(0)


async def test_no_insight_entities_nothing_extra(page: Page) -> None:
    """An integration without the insight entities (older, or disabled): the card as before."""
    card = await show(page, module_states())
    await expect(card.locator(".insights")).to_have_count(0)
    await expect(card.locator(".weakest")).to_have_count(0)
    await expect(card.locator(".fact")).to_have_count(4)


async def test_unavailable_insight_entities_nothing_extra(page: Page) -> None:
    """Insight entities that are unavailable draw nothing (the module itself answers)."""
    card = await show(page, module_states(difference_trend="unavailable", weakest_cell="unavailable"))
    await expect(card.locator(".insights")).to_have_count(0)
    await expect(card.locator(".cell.weakest")).to_have_count(0)


async def test_german(page: Page) -> None:
    """The insights in German, like the card's other texts."""
    card = await show(
        page, module_states(difference_trend="-1.2", top_difference_yesterday="18", weakest_cell="5"), "de"
    )
    await expect(card.locator(".fact.trend .label")).to_have_text("Trend bei Vollladung")
    await expect(card.locator(".fact.trend small")).to_have_text("gleicht sich an · gestern 18 mV")
    await expect(card.locator(".fact.weakest .label")).to_have_text("Schwächste Zelle")
