"""Buttons: the register survey, and (Bluetooth only) letting the DALY phone app in for a while."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import override

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import DalyConfigEntry, DalyCoordinator
from .entity import DalyEntity, DalyLocalEntity

# One survey at a time is plenty.
PARALLEL_UPDATES = 1

#: Off by default: only people helping to close the register table's open questions need it.
SURVEY = ButtonEntityDescription(
    key="survey_registers",
    translation_key="survey_registers",
    entity_category=EntityCategory.DIAGNOSTIC,
    entity_registry_enabled_default=False,
)


@dataclass(frozen=True, kw_only=True)
class DalyLinkButtonEntityDescription(ButtonEntityDescription):
    """A button that acts on the link, not on the module: what a press asks of the coordinator."""

    press_fn: Callable[[DalyCoordinator], Awaitable[None]]


#: The dongle takes one Bluetooth client at a time: these leave it to the DALY phone app for a
#: while and take it back. Keeping the link released for good is the keep-connected switch.
PHONE_APP_BUTTONS: tuple[DalyLinkButtonEntityDescription, ...] = (
    DalyLinkButtonEntityDescription(
        key="release_dongle",
        translation_key="release_dongle",
        entity_category=EntityCategory.CONFIG,
        press_fn=lambda coordinator: coordinator.async_release_dongle(),
    ),
    DalyLinkButtonEntityDescription(
        key="take_back_dongle",
        translation_key="take_back_dongle",
        entity_category=EntityCategory.CONFIG,
        press_fn=lambda coordinator: coordinator.async_take_back_dongle(),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DalyConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the survey button, and the phone app's buttons for Bluetooth entries."""
    coordinator = entry.runtime_data
    async_add_entities([DalySurveyButton(coordinator, SURVEY)])
    if coordinator.is_ble:
        async_add_entities(DalyLinkButton(coordinator, description) for description in PHONE_APP_BUTTONS)


class DalySurveyButton(DalyEntity, ButtonEntity):
    """Surveys the module's registers once; the diagnostics download carries the result."""

    @override
    async def async_press(self) -> None:
        """Run the survey (read-only); polls go on between its requests."""
        await self.coordinator.async_survey()


class DalyLinkButton(DalyLocalEntity, ButtonEntity):
    """A button of the link: usable while the module is silent (the phone app may hold it)."""

    entity_description: DalyLinkButtonEntityDescription

    @override
    async def async_press(self) -> None:
        """Ask the coordinator."""
        await self.entity_description.press_fn(self.coordinator)
