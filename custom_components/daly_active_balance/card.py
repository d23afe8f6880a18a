"""The cells card: served from the integration's frontend/ folder and loaded by every frontend.

Installing the integration is enough: no Lovelace resource to add, no separate HACS plugin. The
URL carries the integration's version, so browsers fetch the new card after an update.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from homeassistant.components.frontend import add_extra_js_url
from homeassistant.components.http import StaticPathConfig  # type: ignore[attr-defined]  # public, no __all__
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration

from .const import DOMAIN, LOGGER

CARD_FILE: Final = Path(__file__).parent / "frontend" / "daly-balancer-card.js"
CARD_URL: Final = f"/{DOMAIN}/{CARD_FILE.name}"


async def async_register_card(hass: HomeAssistant) -> None:
    """Serve the card and have the frontend load it (once per Home Assistant start).

    Without Home Assistant's frontend (a headless installation) there is nothing to load it into.
    """
    if "frontend" not in hass.config.components:
        LOGGER.debug("No frontend: the cells card is not registered")
        return
    integration = await async_get_integration(hass, DOMAIN)
    # The file changes only with the version: browsers may keep it as long as they like.
    await hass.http.async_register_static_paths([StaticPathConfig(CARD_URL, str(CARD_FILE), cache_headers=True)])
    add_extra_js_url(hass, f"{CARD_URL}?v={integration.version}")
