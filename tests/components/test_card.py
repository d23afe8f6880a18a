"""The cells card: served by the integration and loaded by the frontend, once per Home Assistant."""

from __future__ import annotations

import json
import re

from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig, serve_tcp
from custom_components.daly_active_balance.card import CARD_FILE, CARD_URL
from custom_components.daly_active_balance.const import DOMAIN

from ..card_table import card_strings
from .conftest import add_serial_entry

pytestmark = pytest.mark.usefixtures("socket_enabled")

VERSION = json.loads((CARD_FILE.parents[1] / "manifest.json").read_text(encoding="utf-8"))["version"]
TRANSLATIONS = CARD_FILE.parents[1] / "translations"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_card_speaks_every_language_of_the_integration() -> None:
    """The card's table has each language of translations/, with English's keys and placeholders."""
    table = card_strings()
    assert set(table) == {path.stem for path in TRANSLATIONS.glob("*.json")}
    english = table["en"]
    for language, texts in table.items():
        assert set(texts) == set(english), language
        for key, text in english.items():
            assert texts[key].strip() == texts[key] != "", (language, key)
            assert PLACEHOLDER.findall(texts[key]) == PLACEHOLDER.findall(text), (language, key)
        if language != "en":
            same = [key for key, text in english.items() if texts[key] == text and len(text) > 12]
            assert not same, (language, same)


def card_urls(hass: HomeAssistant) -> list[str]:
    """The extra modules every frontend loads that are this card."""
    return [url for url in hass.data[DATA_EXTRA_MODULE_URL].urls if url.startswith(CARD_URL)]


async def test_card_served_and_loaded_once_for_two_modules(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, config_entry: MockConfigEntry
) -> None:
    """With the frontend, the card is served and registered once, whatever the number of modules."""
    assert await async_setup_component(hass, "frontend", {})
    second = SimulatedBalancer(SimulatorConfig(cells=8, seed=2))
    server = await serve_tcp(second)
    try:
        other = add_serial_entry(hass, server.url, "DALY balancer 8S")
        # Setting the integration up sets up every entry of it.
        assert await hass.config_entries.async_setup(config_entry.entry_id)
        await hass.async_block_till_done()
        assert config_entry.state is other.state is ConfigEntryState.LOADED

        # The URL carries the manifest's version: browsers fetch the new card after an update.
        assert card_urls(hass) == [f"{CARD_URL}?v={VERSION}"]

        client = await hass_client()
        response = await client.get(card_urls(hass)[0])
        assert response.status == 200
        assert await response.text() == CARD_FILE.read_text(encoding="utf-8")
        assert "registry.define(CARD, DalyBalancerCard)" in CARD_FILE.read_text(encoding="utf-8")

        # Reloading an entry sets nothing up twice (a second static route would raise).
        assert await hass.config_entries.async_reload(config_entry.entry_id)
        await hass.async_block_till_done()
        assert card_urls(hass) == [f"{CARD_URL}?v={VERSION}"]
    finally:
        for entry in hass.config_entries.async_entries(DOMAIN):
            await hass.config_entries.async_unload(entry.entry_id)
        await server.close()


async def test_no_frontend_no_card(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Without Home Assistant's frontend (headless), the modules set up all the same and nothing is served."""
    assert "frontend" not in hass.config.components
    assert DATA_EXTRA_MODULE_URL not in hass.data
    assert hass.states.async_entity_ids()
