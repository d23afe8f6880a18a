"""Switches: the balancer itself, never sleep, and (Bluetooth only) whether the link is kept open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, override

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.components.switch.const import SwitchDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoredExtraData, RestoreEntity

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
)
from .writes import BALANCER_ENABLED, SLEEP_TIME

#: The restore data's key of the sleep time "Never sleep" off gives back.
LAST_SLEEP_TIME: Final = "last_sleep_time"

# One write at a time: the module answers one request at a time anyway.
PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
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
    # The sleep time's special value 65535 as a switch of its own: on writes it, off gives back
    # the user's sleep time (DalyNeverSleepSwitch). The "Sleep time" number shows and sets it.
    DalySwitchEntityDescription(
        key="never_sleep",
        translation_key="never_sleep",
        setting=SLEEP_TIME,
        entity_category=EntityCategory.CONFIG,
        is_on_fn=lambda data: None if data.settings.sleep_time is None else data.settings.sleep_time == SLEEP_NEVER,
        on_value=SLEEP_NEVER,
        # Only when Home Assistant never saw another sleep time: the manual's factory setting.
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
    async_add_present_entities(entry, SWITCHES, _switch, async_add_entities)
    coordinator = entry.runtime_data
    if coordinator.is_ble:
        async_add_entities([DalyKeepConnectedSwitch(coordinator, KEEP_CONNECTED)])


def _switch(coordinator: DalyCoordinator, description: DalySwitchEntityDescription) -> DalySwitch:
    if description.setting is SLEEP_TIME:
        return DalyNeverSleepSwitch(coordinator, description)
    return DalySwitch(coordinator, description)


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


def _sleep_time_to_restore(value: object) -> int | None:
    """``value`` if it is a sleep time that "Never sleep" off may write back, else None."""
    reg = SLEEP_TIME.register
    if not isinstance(value, int) or isinstance(value, bool) or value == SLEEP_NEVER:
        return None
    assert reg.minimum is not None and reg.maximum is not None
    # One the table refuses now (set by the phone app, or before its minimum was raised) would
    # only fail: the manual's default is written instead.
    return value if reg.minimum <= value <= reg.maximum else None


class DalyNeverSleepSwitch(DalySwitch, RestoreEntity):
    """Never sleep: on writes 65535, off the last other sleep time Home Assistant saw.

    That sleep time is the user's: off must give it back, not the factory setting. It is kept
    across restarts in the entity's restore data; the manual's default (3600 s) is written only
    when Home Assistant never saw one. Off while off writes nothing (a script or an "all off"
    group must not touch the user's sleep time).
    """

    _last_sleep_time: int | None = None

    @override
    async def async_added_to_hass(self) -> None:
        """Take the sleep time kept before a restart, unless the module shows a newer one."""
        await super().async_added_to_hass()
        if (stored := await self.async_get_last_extra_data()) is not None:
            self._last_sleep_time = _sleep_time_to_restore(stored.as_dict().get(LAST_SLEEP_TIME))
        self._remember()

    @callback
    @override
    def _handle_coordinator_update(self) -> None:
        self._remember()
        super()._handle_coordinator_update()

    def _remember(self) -> None:
        if (sleep_time := _sleep_time_to_restore(self.coordinator.data.settings.sleep_time)) is not None:
            self._last_sleep_time = sleep_time

    @property
    @override
    def extra_restore_state_data(self) -> RestoredExtraData:
        """The sleep time off gives back, kept across restarts."""
        return RestoredExtraData({LAST_SLEEP_TIME: self._last_sleep_time})

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        """Write back the user's sleep time (verified), unless it is in force already.

        One shorter than the time between polls (the interval grew while the module never
        slept) would have it asleep at every poll, which the Sleep time number refuses: the
        manual's default, which outlasts every interval the options allow, is written instead,
        so turning off never fails a script or a group.
        """
        if self.is_on is False:
            return
        off = self._last_sleep_time
        interval = self.coordinator.update_interval
        if off is not None and interval is not None and off < interval.total_seconds():
            off = None
        await self.async_write(self.entity_description.off_value if off is None else off)


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
