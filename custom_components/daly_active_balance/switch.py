"""Switches: the balancer itself, never sleep, and (Bluetooth only) whether the link is kept open."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, override

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.components.switch.const import SwitchDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from aiodalybalancer.models import ProtocolFamily
from aiodalybalancer.registers import SLEEP_DEFAULT, SLEEP_NEVER

from .const import CONF_KEEP_CONNECTED, DEFAULT_KEEP_CONNECTED
from .coordinator import DalyConfigEntry, DalyCoordinator, DalyData
from .entity import (
    DalyLocalEntity,
    DalySettingEntity,
    DalySettingEntityDescription,
    async_add_present_entities,
    enabled_by_default,
    entity_description,
)
from .writes import BALANCER_ENABLED, SLEEP_TIME

# One write at a time: the module answers one request at a time anyway.
PARALLEL_UPDATES = 1


@entity_description
class DalySwitchEntityDescription(SwitchEntityDescription, DalySettingEntityDescription):
    """An on/off view of a setting: the values its register holds for on and for off."""

    is_on_fn: Callable[[DalyData], bool | None]
    on_value: int | bool = True
    off_value: int | bool = False


def _d2_with(value_fn: Callable[[DalyData], object]) -> Callable[[DalyData], bool]:
    """Exists on a D2 module that reports the value (A5 modules have no writes)."""
    return lambda data: data.status.protocol is ProtocolFamily.D2 and value_fn(data) is not None


SWITCHES: tuple[DalySwitchEntityDescription, ...] = (
    # Register 0x00CF, the switch the DALY app toggles (captured); the module's main feature,
    # hence no entity category.
    DalySwitchEntityDescription(
        key="balancer_enabled",
        translation_key="balancer_enabled",
        setting=BALANCER_ENABLED,
        device_class=SwitchDeviceClass.SWITCH,
        entity_registry_enabled_default=enabled_by_default("balancer_enabled"),
        is_on_fn=lambda data: data.status.balancer_enabled,
        exists_fn=_d2_with(lambda data: data.status.balancer_enabled),
    ),
    # The sleep time's special value 65535 as a switch of its own: on writes it, off writes the
    # manual's factory setting (3600 s). The "Sleep time" number shows and sets the seconds.
    DalySwitchEntityDescription(
        key="never_sleep",
        translation_key="never_sleep",
        setting=SLEEP_TIME,
        entity_category=EntityCategory.CONFIG,
        is_on_fn=lambda data: None if data.settings.sleep_time is None else data.settings.sleep_time == SLEEP_NEVER,
        on_value=SLEEP_NEVER,
        off_value=SLEEP_DEFAULT,
        exists_fn=_d2_with(lambda data: data.settings.sleep_time),
    ),
)

KEEP_CONNECTED = SwitchEntityDescription(
    key=CONF_KEEP_CONNECTED,
    translation_key=CONF_KEEP_CONNECTED,
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DalyConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the balancer switch, and the keep-connected option for Bluetooth entries."""
    async_add_present_entities(entry, SWITCHES, DalySwitch, async_add_entities)
    coordinator = entry.runtime_data
    if coordinator.is_ble:
        async_add_entities([DalyKeepConnectedSwitch(coordinator, KEEP_CONNECTED)])


class DalySwitch(DalySettingEntity, SwitchEntity):
    """An on/off setting of the module, written through a verified write."""

    entity_description: DalySwitchEntityDescription

    @property
    @override
    def is_on(self) -> bool | None:
        """The state from the latest poll."""
        return self.entity_description.is_on_fn(self.coordinator.data)

    @override
    def shown(self, value: object) -> str:
        """On or off, as the switch's state is shown."""
        platform = self.platform_data
        state = "on" if value == self.entity_description.on_value else "off"
        return platform.component_translations.get(
            f"component.{platform.domain}.entity_component._.state.{state}", state
        )

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch on (verified; raises a translated error)."""
        await self.async_write(self.entity_description.on_value)

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch off (verified; raises a translated error)."""
        await self.async_write(self.entity_description.off_value)


class DalyKeepConnectedSwitch(DalyLocalEntity, SwitchEntity):
    """The entry option that keeps the Bluetooth link open between polls.

    Off releases the dongle after every poll so the DALY phone app can connect. The entry's
    update listener applies the option without a reload.
    """

    def __init__(self, coordinator: DalyCoordinator, description: SwitchEntityDescription) -> None:
        """Follow the option also when it is changed from the options flow."""
        super().__init__(coordinator, description)
        self._entry: DalyConfigEntry = coordinator.config_entry

    @override
    async def async_added_to_hass(self) -> None:
        """Write the state again whenever the entry's options change."""
        await super().async_added_to_hass()
        self.async_on_remove(self._entry.add_update_listener(self._async_options_updated))

    async def _async_options_updated(self, hass: HomeAssistant, entry: DalyConfigEntry) -> None:
        self.async_write_ha_state()

    @property
    @override
    def is_on(self) -> bool:
        """The entry's current option."""
        return bool(self._entry.options.get(CONF_KEEP_CONNECTED, DEFAULT_KEEP_CONNECTED))

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        """Keep the link open between polls."""
        self._set_option(True)

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        """Release the link after every poll."""
        self._set_option(False)

    @callback
    def _set_option(self, keep_connected: bool) -> None:
        self.hass.config_entries.async_update_entry(
            self._entry, options={**self._entry.options, CONF_KEEP_CONNECTED: keep_connected}
        )
        self.async_write_ha_state()
