"""The DALY Smart Active Balance Module integration."""

from __future__ import annotations

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant

from .const import CONF_KEEP_CONNECTED, DEFAULT_KEEP_CONNECTED
from .coordinator import DalyConfigEntry, DalyCoordinator, create_transport
from .protocol.client import DalyClient
from .repairs import async_delete_issues

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]


async def async_setup_entry(hass: HomeAssistant, entry: DalyConfigEntry) -> bool:
    """Connect to the module, read it once, and set up the platforms."""
    transport = create_transport(
        hass, dict(entry.data), keep_connected=entry.options.get(CONF_KEEP_CONNECTED, DEFAULT_KEEP_CONNECTED)
    )
    coordinator = DalyCoordinator(hass, entry, DalyClient(transport))
    try:
        await coordinator.async_config_entry_first_refresh()
    except BaseException:
        await coordinator.client.close()
        raise
    entry.runtime_data = coordinator
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))

    async def _async_close(_event: Event) -> None:
        # Home Assistant stops without unloading: release the port (its lock) or the BLE link
        # (the dongle takes one central at a time) instead of holding it until the process ends.
        await coordinator.client.close()

    entry.async_on_unload(hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, _async_close))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def _async_options_updated(hass: HomeAssistant, entry: DalyConfigEntry) -> None:
    """Apply new options at once; none of them needs a reload."""
    coordinator = entry.runtime_data
    coordinator.apply_options()
    await coordinator.async_request_refresh()


async def async_unload_entry(hass: HomeAssistant, entry: DalyConfigEntry) -> bool:
    """Unload the platforms, withdraw the repair issues and close the port or BLE connection."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        # Nothing would clear this entry's issues while it is unloaded (or removed).
        async_delete_issues(entry.runtime_data)
        await entry.runtime_data.client.close()
    return unloaded
