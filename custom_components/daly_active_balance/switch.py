"""Switches: the balancer itself, and (Bluetooth only) whether the link is kept open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, override

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.components.switch.const import SwitchDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import CONF_KEEP_CONNECTED, DEFAULT_KEEP_CONNECTED
from .coordinator import DalyConfigEntry, DalyCoordinator, DalyData
from .entity import (
    DalyEntityDescription,
    DalyLocalEntity,
    DalySettingEntity,
    async_add_present_entities,
    enabled_by_default,
)
from .protocol.models import ProtocolFamily

# One write at a time: the module answers one request at a time anyway.
PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class DalySwitchEntityDescription(SwitchEntityDescription, DalyEntityDescription):
    """An on/off register of the module; ``key`` is its register key."""

    is_on_fn: Callable[[DalyData], bool | None]


SWITCHES: tuple[DalySwitchEntityDescription, ...] = (
    # Register 0x00CF, the switch the DALY app toggles (captured); the module's main feature,
    # hence no entity category.
    DalySwitchEntityDescription(
        key="balancer_enabled",
        translation_key="balancer_enabled",
        device_class=SwitchDeviceClass.SWITCH,
        entity_registry_enabled_default=enabled_by_default("balancer_enabled"),
        is_on_fn=lambda data: data.status.balancer_enabled,
        exists_fn=lambda data: data.status.protocol is ProtocolFamily.D2 and data.status.balancer_enabled is not None,
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
        state = "on" if value else "off"
        return platform.component_translations.get(
            f"component.{platform.domain}.entity_component._.state.{state}", state
        )

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch on (verified; raises a translated error)."""
        await self.async_write(True)

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch off (verified; raises a translated error)."""
        await self.async_write(False)


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
