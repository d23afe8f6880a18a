"""Select: the battery type (cell chemistry) the module is set to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import override

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import DalyConfigEntry
from .entity import DalyEntityDescription, DalySettingEntity, async_add_present_entities, enabled_by_default
from .protocol.models import ProtocolFamily, Settings
from .protocol.registers import register

# One write at a time: the module answers one request at a time anyway.
PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class DalySelectEntityDescription(SelectEntityDescription, DalyEntityDescription):
    """A setting with named options; ``key`` is its register key, the options are the table's."""

    value_fn: Callable[[Settings], str | None]


def _enum_setting(key: str, value_fn: Callable[[Settings], str | None]) -> DalySelectEntityDescription:
    """A setting whose options come from its register's enumeration."""
    reg = register(key)
    assert reg.writable and reg.options
    return DalySelectEntityDescription(
        key=key,
        translation_key=key,
        entity_category=EntityCategory.CONFIG,
        entity_registry_enabled_default=enabled_by_default(key),
        options=list(reg.options),
        value_fn=value_fn,
        # Writes exist only in the D2 protocol; a legacy A5 module gets no setting entities.
        exists_fn=lambda data: data.status.protocol is ProtocolFamily.D2 and value_fn(data.settings) is not None,
    )


SELECTS: tuple[DalySelectEntityDescription, ...] = (
    _enum_setting("battery_type", lambda settings: settings.battery_type),
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

    @property
    @override
    def current_option(self) -> str | None:
        """The option from the latest settings read (None for a raw value outside the table)."""
        value = self.entity_description.value_fn(self.coordinator.data.settings)
        return value if value in self.options else None

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
