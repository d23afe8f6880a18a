"""The DALY Smart Active Balance Module integration."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from homeassistant.const import CONF_PORT, EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import config_validation as cv, device_registry as dr, entity_registry as er
from homeassistant.helpers.typing import ConfigType

from aiodalybalancer.client import DalyClient

from .card import async_register_card
from .const import CONF_CONNECTION, CONF_KEEP_CONNECTED, CONNECTION_SERIAL, DEFAULT_KEEP_CONNECTED, DOMAIN, LOGGER
from .coordinator import DalyConfigEntry, DalyCoordinator, create_transport
from .issues import async_delete_issues
from .ports import InvalidPortError, canonical_port, port_id

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the cells card, once for all modules."""
    await async_register_card(hass)
    return True


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


async def async_migrate_entry(hass: HomeAssistant, entry: DalyConfigEntry) -> bool:
    """Carry a 1.1 entry over to 1.2 (Home Assistant itself refuses entries of a newer version).

    A serial entry stores its port in canonical spelling and is identified by ``ports.port_id``
    (URL credentials left out, device links resolved), so the same port typed another way is
    recognised as configured. The entry's device and entities, whose ids derive from the entry's,
    move to the new id with their history and settings. An id the config flow did not derive
    from the port is left as it is; so is one that another entry already has (the same port
    added twice before), and a warning says so. A Bluetooth entry is identified by its address
    already.
    """
    data, unique_id = dict(entry.data), entry.unique_id
    if data[CONF_CONNECTION] == CONNECTION_SERIAL:
        old_port = str(data[CONF_PORT])
        with suppress(InvalidPortError):  # otherwise kept as it is: setup names the port it cannot open
            data[CONF_PORT] = canonical_port(old_port)
        new_id = await hass.async_add_executor_job(port_id, data[CONF_PORT])
        if unique_id != old_port or new_id == unique_id:
            pass  # not derived from the port by the config flow, or unchanged
        elif any(other.unique_id == new_id for other in hass.config_entries.async_entries(DOMAIN)):
            LOGGER.warning("%s uses the same port as another entry (%s): remove one of them", entry.title, new_id)
        else:
            await _move_registry_ids(hass, entry, old_port, new_id)
            unique_id = new_id
    hass.config_entries.async_update_entry(entry, data=data, unique_id=unique_id, minor_version=2)
    return True


async def _move_registry_ids(hass: HomeAssistant, entry: DalyConfigEntry, old_id: str, new_id: str) -> None:
    """Give the entry's device and entities the ids that derive from ``new_id`` (``entity.py``)."""
    devices = dr.async_get(hass)
    if (device := devices.async_get_device(identifiers={(DOMAIN, old_id)})) is not None:
        devices.async_update_device(device.id, new_identifiers={(DOMAIN, new_id)})

    @callback
    def move(entity: er.RegistryEntry) -> dict[str, Any] | None:
        if not entity.unique_id.startswith(f"{old_id}_"):
            return None
        return {"new_unique_id": new_id + entity.unique_id.removeprefix(old_id)}

    await er.async_migrate_entries(hass, entry.entry_id, move)


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
        async_delete_issues(hass, entry.entry_id)
        await entry.runtime_data.client.close()
    return unloaded
