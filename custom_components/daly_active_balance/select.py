"""Select: the battery type (cell chemistry) the module is set to.

Its attributes give the chemistry's plausible cell voltage range (the register table's, the same
the repair issue checks): the cells card scales its bars to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, override

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from aiodalybalancer.models import ProtocolFamily, Settings
from aiodalybalancer.registers import CHEMISTRY, chemistry_of

from .coordinator import DalyConfigEntry
from .entity import (
    DalySettingEntity,
    DalySettingEntityDescription,
    async_add_present_entities,
    enabled_by_default,
)
from .writes import BATTERY_TYPE, Writable

# One write at a time: the module answers one request at a time anyway.
PARALLEL_UPDATES = 1

#: State attributes of the battery type: the chemistry's plausible cell voltage range (V).
ATTR_PLAUSIBLE_MIN = "plausible_min"
ATTR_PLAUSIBLE_MAX = "plausible_max"


@dataclass(frozen=True, kw_only=True)
class DalySelectEntityDescription(SelectEntityDescription, DalySettingEntityDescription):
    """A setting with named options; the options are its register's."""

    value_fn: Callable[[Settings], str | None]
    attributes_fn: Callable[[Settings], Mapping[str, Any]] = lambda _settings: {}


def _plausible_range(settings: Settings) -> Mapping[str, Any]:
    chemistry = CHEMISTRY[chemistry_of(settings.battery_type)]
    return {ATTR_PLAUSIBLE_MIN: chemistry.plausible_min, ATTR_PLAUSIBLE_MAX: chemistry.plausible_max}


def _enum_setting(
    key: str,
    setting: Writable,
    value_fn: Callable[[Settings], str | None],
    attributes_fn: Callable[[Settings], Mapping[str, Any]] = lambda _settings: {},
) -> DalySelectEntityDescription:
    """A setting whose options come from its register's enumeration."""
    reg = setting.register
    assert reg.writable and reg.options
    return DalySelectEntityDescription(
        key=key,
        translation_key=key,
        setting=setting,
        entity_category=EntityCategory.CONFIG,
        entity_registry_enabled_default=enabled_by_default(reg.key),
        options=list(reg.options),
        value_fn=value_fn,
        attributes_fn=attributes_fn,
        # Writes exist only in the D2 protocol; a legacy A5 module gets no setting entities.
        exists_fn=lambda data: data.status.protocol is ProtocolFamily.D2 and value_fn(data.settings) is not None,
    )


SELECTS: tuple[DalySelectEntityDescription, ...] = (
    _enum_setting("battery_type", BATTERY_TYPE, lambda settings: settings.battery_type, _plausible_range),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DalyConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the battery type select."""
    async_add_present_entities(entry, SELECTS, DalySelect, async_add_entities)


class DalySelect(DalySettingEntity, SelectEntity):
    """An enumerated setting of the module."""

    entity_description: DalySelectEntityDescription
    # They follow the option, which history already has.
    _unrecorded_attributes = frozenset({ATTR_PLAUSIBLE_MIN, ATTR_PLAUSIBLE_MAX})

    @property
    @override
    def current_option(self) -> str | None:
        """The option from the latest settings read (None for a raw value outside the table)."""
        value = self.entity_description.value_fn(self.coordinator.data.settings)
        return value if value in self.options else None

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """What the setting tells beyond its option (the battery type: its plausible cell range)."""
        return self.entity_description.attributes_fn(self.coordinator.data.settings)

    @override
    def shown(self, value: object) -> str:
        """An option by its translated label, as the select shows it."""
        platform = self.platform_data
        key = f"component.{platform.platform_name}.entity.{platform.domain}.{self.translation_key}.state.{value}"
        return platform.platform_translations.get(key, str(value))

    @override
    async def async_select_option(self, option: str) -> None:
        """Write the option to the module (verified; raises a translated error)."""
        await self.async_write(option)
