"""The register survey button: reads every register the module answers, for the diagnostics."""

from __future__ import annotations

from typing import override

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import DalyConfigEntry
from .entity import DalyEntity

# One survey at a time is plenty.
PARALLEL_UPDATES = 1

#: Off by default: only people helping to close the register table's open questions need it.
SURVEY = ButtonEntityDescription(
    key="survey_registers",
    translation_key="survey_registers",
    entity_category=EntityCategory.DIAGNOSTIC,
    entity_registry_enabled_default=False,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DalyConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the survey button."""
    async_add_entities([DalySurveyButton(entry.runtime_data, SURVEY)])


class DalySurveyButton(DalyEntity, ButtonEntity):
    """Surveys the module's registers once; the diagnostics download carries the result."""

    @override
    async def async_press(self) -> None:
        """Run the survey (read-only); polls go on between its requests."""
        await self.coordinator.async_survey()
