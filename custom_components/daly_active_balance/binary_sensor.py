"""Binary sensors: balancing (reported, expected, per cell), warnings, faults, the pack check, insights."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, override

from homeassistant.components.binary_sensor import BinarySensorEntity, BinarySensorEntityDescription
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from aiodalybalancer.registers import MAX_CELLS, WARNING_BITS, active_faults

from .checks import balancing_expected
from .coordinator import DalyConfigEntry, DalyData
from .entity import (
    DalyEntity,
    DalyEntityDescription,
    async_add_present_entities,
    enabled_by_default,
)
from .issues import ATTR_CAUSES, NOT_KEEPING_UP_TRANSLATION_KEY

# The coordinator polls; binary sensors only read its data.
PARALLEL_UPDATES = 0

#: State attributes (lists of keys, translated element by element by the frontend): the active
#: level-1 warning bits, the other active fault bits, why the pack check is on, and which cells.
ATTR_WARNINGS = "warnings"
ATTR_FAULTS = "faults"
ATTR_REASONS = "reasons"
ATTR_CELLS = "cells"
#: "Not keeping up": the cell lowest at the bottom on the days it rose (with a capacity cause).
ATTR_WEAK_CELL = "cell"


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


def _fault_bits(key: str, attribute: str, *, warnings: bool) -> DalyBinarySensorEntityDescription:
    """A sensor on while a bit of its kind (level-1 warnings, or the rest) is set, listing them."""

    def active(data: DalyData) -> list[str]:
        return [name for name in active_faults(data.status.faults) if (name in WARNING_BITS) is warnings]

    return DalyBinarySensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=BinarySensorDeviceClass.PROBLEM,
        entity_registry_enabled_default=enabled_by_default("faults"),
        is_on_fn=lambda data: bool(active(data)),
        exists_fn=lambda data: bool(data.status.faults),
        attributes_fn=lambda data: {attribute: active(data)},
    )


BINARY_SENSORS: tuple[DalyBinarySensorEntityDescription, ...] = (
    DalyBinarySensorEntityDescription(
        key="balancing",
        translation_key="balancing",
        device_class=BinarySensorDeviceClass.RUNNING,
        entity_registry_enabled_default=enabled_by_default("balancing"),
        is_on_fn=lambda data: data.status.balancing,
        exists_fn=lambda data: data.status.balancing is not None,
    ),
    # Computed from the cell list and documented or captured registers only (0x00CF, 0x00A3,
    # 0x00A4): what the module should do, to set beside what it reports.
    DalyBinarySensorEntityDescription(
        key="balancing_expected",
        translation_key="balancing_expected",
        is_on_fn=lambda data: balancing_expected(data.status, data.settings),
        exists_fn=lambda data: balancing_expected(data.status, data.settings) is not None,
    ),
    *(_cell_balancing(cell) for cell in range(1, MAX_CELLS + 1)),
    # Fault registers 0x003A–0x003D (DALY's BMS document; no capture with an alarm exists, so
    # the bit order is unverified), split as the table names the bits: level-1 warnings apart
    # from faults and protections. Only modules that report them (D2 protocol) get the sensors.
    _fault_bits("warning", ATTR_WARNINGS, warnings=True),
    _fault_bits("fault", ATTR_FAULTS, warnings=False),
)

PACK_CHECK = BinarySensorEntityDescription(
    key="pack_check",
    translation_key="pack_check",
    device_class=BinarySensorDeviceClass.PROBLEM,
)


#: On while the top-of-charge difference keeps rising although the balancer should bring it
#: down; the repair of the same name says what to check.
NOT_KEEPING_UP = BinarySensorEntityDescription(
    key="not_keeping_up",
    translation_key=NOT_KEEPING_UP_TRANSLATION_KEY,
    device_class=BinarySensorDeviceClass.PROBLEM,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DalyConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensors the module has, the pack check and "not keeping up"."""
    async_add_entities(
        [DalyPackCheck(entry.runtime_data, PACK_CHECK), DalyNotKeepingUp(entry.runtime_data, NOT_KEEPING_UP)]
    )
    async_add_present_entities(entry, BINARY_SENSORS, DalyBinarySensor, async_add_entities)


class DalyBinarySensor(DalyEntity, BinarySensorEntity):
    """An on/off state the module reports."""

    entity_description: DalyBinarySensorEntityDescription
    # The lists can be long and are already summed up by the state: keep them out of history.
    _unrecorded_attributes = frozenset({ATTR_WARNINGS, ATTR_FAULTS})

    @property
    @override
    def is_on(self) -> bool | None:
        """The state from the latest poll."""
        return self.entity_description.is_on_fn(self.coordinator.data)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """The active warnings or faults, for the warning and fault sensors."""
        if self.entity_description.attributes_fn is None:
            return None
        return self.entity_description.attributes_fn(self.coordinator.data)


class DalyPackCheck(DalyEntity, BinarySensorEntity):
    """On while a rule of the manual is broken: the same debounced findings as the repairs.

    It stays available while the module is silent, so that "stopped answering" shows.
    """

    # The state sums the lists up; the repairs say the rest.
    _unrecorded_attributes = frozenset({ATTR_REASONS, ATTR_CELLS})

    @property
    @override
    def available(self) -> bool:
        """Available once the module has answered (entities exist only then)."""
        return self.coordinator.data is not None

    @property
    @override
    def is_on(self) -> bool:
        """On while any finding holds."""
        return bool(self.coordinator.findings.reasons)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Why it is on, and which cells are implausible."""
        findings = self.coordinator.findings
        return {ATTR_REASONS: [reason.value for reason in findings.reasons], ATTR_CELLS: list(findings.cells)}


class DalyNotKeepingUp(DalyEntity, BinarySensorEntity):
    """On while the pack insights find that the balancer does not keep up, with what to check."""

    # The repair says the same; the state is what automations and the history need.
    _unrecorded_attributes = frozenset({ATTR_CAUSES, ATTR_WEAK_CELL})

    @property
    @override
    def is_on(self) -> bool:
        """On while the verdict holds."""
        return self.coordinator.insights.answers.not_keeping_up is not None

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """The causes to check (translation keys), and the cell losing capacity if one is."""
        verdict = self.coordinator.insights.answers.not_keeping_up
        if verdict is None:
            return {ATTR_CAUSES: [], ATTR_WEAK_CELL: None}
        return {ATTR_CAUSES: [cause.value for cause in verdict.causes], ATTR_WEAK_CELL: verdict.cell}
