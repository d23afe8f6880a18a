"""The DALY Smart Active Balance Module integration."""

from __future__ import annotations

from contextlib import suppress

from homeassistant.const import CONF_ADDRESS, CONF_PORT, EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from aiodalybalancer.client import DalyClient

from .card import async_register_card
from .const import CONF_CONNECTION, CONF_KEEP_CONNECTED, CONNECTION_BLE, DEFAULT_KEEP_CONNECTED, DOMAIN, LOGGER
from .coordinator import DalyConfigEntry, DalyCoordinator
from .identity import async_adopt_ids
from .insights_store import async_remove_insights
from .issues import async_forget
from .link import create_transport
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
    # The coordinator shuts down (and closes its client) when the entry unloads, also after a
    # failed first refresh.
    coordinator = DalyCoordinator(hass, entry, DalyClient(transport))
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = coordinator
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))

    async def _async_stop(_event: Event) -> None:
        # Home Assistant stops without unloading: release the port (its lock) or the BLE link
        # instead of holding it until the process ends.
        await coordinator.async_shutdown()

    entry.async_on_unload(hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, _async_stop))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: DalyConfigEntry) -> bool:
    """Carry a 1.1 or 1.2 entry over to 1.3 (Home Assistant itself refuses entries of a newer version).

    1.2: a serial entry stores its port in canonical spelling and is identified by
    ``ports.port_id`` (URL credentials left out, device links resolved), so the same port typed
    another way is recognised as configured. 1.3: ``tcp://`` is stored as ``socket://`` and host
    names are identified in IDNA, so the identity is derived again; and the registry of an entry
    that an earlier release split on reconfigure (the old entities beside ``_2`` ones, two
    devices) is joined: the old entity ids and device come back to the live entities.

    The entry's device and entities, whose ids derive from the entry's, move to a new id with
    their history and settings. An id the config flow did not derive from the port is left as it
    is; so is one that another entry already has (the same port added twice before), and a
    warning says so. A port that no rule accepts is kept as it is (setup names the port it
    cannot open). A Bluetooth entry is identified by its address already.
    """
    data, unique_id = dict(entry.data), entry.unique_id
    ble = data[CONF_CONNECTION] == CONNECTION_BLE
    connections = {(dr.CONNECTION_BLUETOOTH, str(data[CONF_ADDRESS]))} if ble else None
    if unique_id is not None:
        # Join a split first: the move below would otherwise meet the split's own ids.
        async_adopt_ids(hass, entry.entry_id, unique_id, unique_id, connections)
    if not ble:
        old_port = str(data[CONF_PORT])
        with suppress(InvalidPortError):  # otherwise kept as it is: setup names the port it cannot open
            data[CONF_PORT] = canonical_port(old_port)
        new_id = await hass.async_add_executor_job(_port_id_or_none, data[CONF_PORT])
        if entry.minor_version < 2:
            derived = unique_id == old_port  # 1.1: the port as typed
        else:  # the port's identity under earlier rules
            derived = unique_id is not None and await _same_port(hass, unique_id, new_id)
        if new_id is None or new_id == unique_id or not derived:
            pass  # not derived from the port by the config flow, unchanged, or no port at all
        elif any(other.unique_id == new_id for other in hass.config_entries.async_entries(DOMAIN)):
            LOGGER.warning("%s uses the same port as another entry (%s): remove one of them", entry.title, new_id)
        else:
            async_adopt_ids(hass, entry.entry_id, unique_id, new_id)
            unique_id = new_id
    hass.config_entries.async_update_entry(entry, data=data, unique_id=unique_id, minor_version=3)
    return True


def _port_id_or_none(port: str) -> str | None:
    """``ports.port_id``, or None for a port that no rule accepts."""
    try:
        return port_id(port)
    except InvalidPortError:
        return None


async def _same_port(hass: HomeAssistant, earlier_id: str, new_id: str | None) -> bool:
    """True when ``earlier_id`` (an id the flow derived under earlier rules) names the port ``new_id`` does."""
    try:
        canonical = canonical_port(earlier_id)
    except InvalidPortError:
        return False
    return new_id is not None and await hass.async_add_executor_job(_port_id_or_none, canonical) == new_id


async def _async_options_updated(hass: HomeAssistant, entry: DalyConfigEntry) -> None:
    """Apply new options at once; none of them needs a reload."""
    coordinator = entry.runtime_data
    coordinator.apply_options()
    await coordinator.async_request_refresh()


async def async_unload_entry(hass: HomeAssistant, entry: DalyConfigEntry) -> bool:
    """Unload the platforms; the coordinator's shutdown then closes the port or BLE connection.

    The repair issues stay while their findings hold (a reload must not withdraw a warning, nor
    show an ignored one again); a disabled entry's go, as nothing would clear them.
    """
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded and entry.disabled_by is not None:
        async_forget(hass, entry.entry_id)
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: DalyConfigEntry) -> None:
    """Withdraw the removed entry's repair issues and remove its stored pack insights."""
    async_forget(hass, entry.entry_id)
    await async_remove_insights(hass, entry.entry_id)
