"""Binary sensors: balancing (whole module and per cell) and the module's fault registers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, override

from homeassistant.components.binary_sensor import BinarySensorEntity, BinarySensorEntityDescription
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import DalyConfigEntry, DalyData
from .entity import DalyEntity, DalyEntityDescription, async_add_present_entities, enabled_by_default
from .protocol.registers import MAX_CELLS, active_faults

# The coordinator polls; binary sensors only read its data.
PARALLEL_UPDATES = 0

#: State attribute of the fault sensor: the names of the active fault bits.
ATTR_FAULTS = "faults"


@dataclass(frozen=True, kw_only=True)
class DalyBinarySensorEntityDescription(BinarySensorEntityDescription, DalyEntityDescription):
    """A binary sensor of the module: how to read its state from the coordinator's data."""

    is_on_fn: Callable[[DalyData], bool | None]
    attributes_fn: Callable[[DalyData], Mapping[str, Any]] | None = None


def _cell_balancing(cell: int) -> DalyBinarySensorEntityDescription:
    """Whether cell ``cell`` (1-based) is being balanced.

    [INF] The per-cell bitmap (0x003E/0x003F) comes from ESPHome code for DALY BMSs; DALY's own
    document gives 0x003E another meaning, so these are disabled by default.
    """
    index = cell - 1

    def cell_bit(data: DalyData) -> bool | None:
        cells = data.status.balancing_cells
        return cells[index] if cells is not None and index < len(cells) else None

    return DalyBinarySensorEntityDescription(
        key=f"cell_balancing_{cell}",
        translation_key="cell_balancing",
        translation_placeholders={"cell": str(cell)},
        device_class=BinarySensorDeviceClass.RUNNING,
        entity_registry_enabled_default=enabled_by_default("balancing_cells"),
        is_on_fn=cell_bit,
        exists_fn=lambda data: cell_bit(data) is not None,
    )


def _faults(data: DalyData) -> Mapping[str, Any]:
    return {ATTR_FAULTS: active_faults(data.status.faults)}


BINARY_SENSORS: tuple[DalyBinarySensorEntityDescription, ...] = (
    DalyBinarySensorEntityDescription(
        key="balancing",
        translation_key="balancing",
        device_class=BinarySensorDeviceClass.RUNNING,
        entity_registry_enabled_default=enabled_by_default("balancing"),
        is_on_fn=lambda data: data.status.balancing,
        exists_fn=lambda data: data.status.balancing is not None,
    ),
    *(_cell_balancing(cell) for cell in range(1, MAX_CELLS + 1)),
    # Fault registers 0x003A–0x003D (DALY's BMS document; no capture with an alarm exists, so
    # the bit order is unverified). Only modules that report them (D2 protocol) get the sensor.
    DalyBinarySensorEntityDescription(
        key="fault",
        translation_key="fault",
        device_class=BinarySensorDeviceClass.PROBLEM,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=enabled_by_default("faults"),
        is_on_fn=lambda data: any(data.status.faults),
        exists_fn=lambda data: bool(data.status.faults),
        attributes_fn=_faults,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DalyConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensors the module has."""
    async_add_present_entities(entry, BINARY_SENSORS, DalyBinarySensor, async_add_entities)


class DalyBinarySensor(DalyEntity, BinarySensorEntity):
    """An on/off state the module reports."""

    entity_description: DalyBinarySensorEntityDescription
    # The fault list can be long and is already summed up by the state: keep it out of history.
    _unrecorded_attributes = frozenset({ATTR_FAULTS})

    @property
    @override
    def is_on(self) -> bool | None:
        """The state from the latest poll."""
        return self.entity_description.is_on_fn(self.coordinator.data)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """The active faults, for the fault sensor."""
        if self.entity_description.attributes_fn is None:
            return None
        return self.entity_description.attributes_fn(self.coordinator.data)
