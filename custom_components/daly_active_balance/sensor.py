"""Sensors: cell and pack voltages, temperatures, balance current, diagnostics and the pack insights.

Units and display precision come from the register table (``aiodalybalancer/registers.py``); a
register whose meaning is only inferred or unknown gives an entity disabled by default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, override

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    MAX_LENGTH_STATE_STATE,
    PERCENTAGE,
    SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
    EntityCategory,
    UnitOfElectricPotential,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from aiodalybalancer.registers import MAX_CELLS, TEMPERATURE_SLOTS, register

from .coordinator import DalyConfigEntry, DalyCoordinator, DalyData
from .entity import (
    DalyEntity,
    DalyEntityDescription,
    DalyLocalEntity,
    async_add_present_entities,
    enabled_by_default,
)
from .insights import Answers

# The coordinator polls; sensors only read its data.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class DalySensorEntityDescription(SensorEntityDescription, DalyEntityDescription):
    """A sensor of the module: how to read its value from the coordinator's data."""

    value_fn: Callable[[DalyData], StateType]


def _measured(
    key: str,
    *,
    register_key: str | None = None,
    device_class: SensorDeviceClass | None = None,
    value_fn: Callable[[DalyData], StateType],
    exists_fn: Callable[[DalyData], bool] = lambda _data: True,
    translation_key: str | None = None,
    translation_placeholders: dict[str, str] | None = None,
    suggested_unit_of_measurement: str | None = None,
    suggested_display_precision: int | None = None,
    entity_category: EntityCategory | None = None,
) -> DalySensorEntityDescription:
    """A measurement whose unit, precision and default visibility come from its register."""
    reg = register(register_key or key)
    return DalySensorEntityDescription(
        key=key,
        translation_key=translation_key or key,
        translation_placeholders=translation_placeholders,
        device_class=device_class,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=reg.unit,
        suggested_unit_of_measurement=suggested_unit_of_measurement,
        # The table's decimals fit its native unit; a suggested unit brings its own precision.
        suggested_display_precision=reg.decimals
        if suggested_display_precision is None
        else suggested_display_precision,
        entity_category=entity_category,
        entity_registry_enabled_default=enabled_by_default(reg.key),
        value_fn=value_fn,
        exists_fn=exists_fn,
    )


def _cell_voltage(cell: int) -> DalySensorEntityDescription:
    """The voltage of cell ``cell`` (1-based); it exists while the module reports that cell."""
    index = cell - 1
    return _measured(
        f"cell_voltage_{cell}",
        register_key="cell_voltages",
        translation_key="cell_voltage",
        translation_placeholders={"cell": str(cell)},
        device_class=SensorDeviceClass.VOLTAGE,
        value_fn=lambda data: data.status.cell_voltages[index] if index < len(data.status.cell_voltages) else None,
        exists_fn=lambda data: index < len(data.status.cell_voltages),
    )


def _temperature(sensor: int) -> DalySensorEntityDescription:
    """Temperature sensor ``sensor`` (1-based); only real sensors are created."""
    index = sensor - 1
    return _measured(
        f"temperature_{sensor}",
        register_key="temperatures",
        translation_key="temperature",
        translation_placeholders={"sensor": str(sensor)},
        device_class=SensorDeviceClass.TEMPERATURE,
        value_fn=lambda data: data.status.temperatures[index] if index < len(data.status.temperatures) else None,
        exists_fn=lambda data: index < len(data.status.temperatures),
    )


def _diagnostic_count(key: str, value_fn: Callable[[DalyData], StateType]) -> DalySensorEntityDescription:
    """A count or raw register shown on the device page's diagnostic card."""
    return DalySensorEntityDescription(
        key=key,
        translation_key=key,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=enabled_by_default(key),
        value_fn=value_fn,
    )


SENSORS: tuple[DalySensorEntityDescription, ...] = (
    _measured("pack_voltage", device_class=SensorDeviceClass.VOLTAGE, value_fn=lambda data: data.status.pack_voltage),
    *(_cell_voltage(cell) for cell in range(1, MAX_CELLS + 1)),
    _measured(
        "min_cell_voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        value_fn=lambda data: data.status.min_cell_voltage,
    ),
    _measured(
        "max_cell_voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        value_fn=lambda data: data.status.max_cell_voltage,
    ),
    _measured(
        "average_cell_voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        value_fn=lambda data: data.status.average_cell_voltage,
    ),
    # Which cell is lowest / highest: computed from the cell list (no register holds it). A cell
    # number is a label, not a quantity, so it gets no state class (no long-term statistics).
    DalySensorEntityDescription(
        key="min_voltage_cell",
        translation_key="min_voltage_cell",
        value_fn=lambda data: data.status.min_cell,
    ),
    DalySensorEntityDescription(
        key="max_voltage_cell",
        translation_key="max_voltage_cell",
        value_fn=lambda data: data.status.max_cell,
    ),
    # Native unit from the table (V); shown in mV, the unit people write automations in.
    _measured(
        "cell_delta",
        device_class=SensorDeviceClass.VOLTAGE,
        suggested_unit_of_measurement=UnitOfElectricPotential.MILLIVOLT,
        suggested_display_precision=0,
        value_fn=lambda data: data.status.cell_delta,
    ),
    *(_temperature(sensor) for sensor in range(1, TEMPERATURE_SLOTS + 1)),
    # [INF] register 0x0040: meaning taken from 100Balance BMS frames, sign unknown. Created only
    # when the module reports it (0xFFFF = absent); disabled by default through its confidence.
    _measured(
        "balance_current",
        device_class=SensorDeviceClass.CURRENT,
        value_fn=lambda data: data.status.balance_current,
        exists_fn=lambda data: data.status.balance_current is not None,
    ),
    _measured(
        "mos_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda data: data.status.mos_temperature,
        exists_fn=lambda data: data.status.mos_temperature is not None,
    ),
    _measured(
        "board_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda data: data.status.board_temperature,
        exists_fn=lambda data: data.status.board_temperature is not None,
    ),
    _diagnostic_count("cell_count", lambda data: data.status.cell_count),
    _diagnostic_count("temperature_sensor_count", lambda data: data.status.temperature_sensor_count),
    # Registers of unknown meaning, kept visible (disabled) for people researching them.
    _diagnostic_count("register_00ce", lambda data: data.status.register_00ce),
    _diagnostic_count("register_00d0", lambda data: data.status.register_00d0),
)


@dataclass(frozen=True, kw_only=True)
class DalyLinkSensorEntityDescription(SensorEntityDescription):
    """A sensor of the link's health: read from the coordinator's counters, not the module's data."""

    value_fn: Callable[[DalyCoordinator], StateType | datetime]
    ble_only: bool = False


LINK_SENSORS: tuple[DalyLinkSensorEntityDescription, ...] = (
    # Off by default, as Home Assistant's own signal strength sensors are.
    DalyLinkSensorEntityDescription(
        key="signal_strength",
        translation_key="signal_strength",
        device_class=SensorDeviceClass.SIGNAL_STRENGTH,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda coordinator: coordinator.rssi,
        ble_only=True,
    ),
    DalyLinkSensorEntityDescription(
        key="poll_success",
        translation_key="poll_success",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda coordinator: coordinator.poll_success_share,
    ),
    DalyLinkSensorEntityDescription(
        key="last_error",
        translation_key="last_error",
        entity_category=EntityCategory.DIAGNOSTIC,
        # A state holds at most 255 characters; the whole text is in the diagnostics.
        value_fn=lambda coordinator: coordinator.last_error and coordinator.last_error[:MAX_LENGTH_STATE_STATE],
    ),
    # A sensor rather than an attribute of the button: a button's state is when it was last
    # pressed, and a timestamp shows as "in 7 minutes" on the device page and in automations.
    DalyLinkSensorEntityDescription(
        key="released_until",
        translation_key="released_until",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda coordinator: coordinator.released_until,
        ble_only=True,
    ),
)


#: The per-cell counts of the weakest cell and the cell highest at the top (item i: cell i + 1).
ATTR_COUNTS = "counts"
#: The trend's unit: millivolts per day (Home Assistant has no unit or device class for it).
MILLIVOLTS_PER_DAY = "mV/d"


@dataclass(frozen=True, kw_only=True)
class DalyInsightSensorEntityDescription(SensorEntityDescription):
    """A sensor of the pack insights: how to read it from what they say now."""

    value_fn: Callable[[Answers], StateType]
    #: The per-cell counts shown as the ``counts`` attribute, for the cell sensors.
    counts_fn: Callable[[Answers], tuple[int, ...]] | None = None


def _top_difference(key: str, value_fn: Callable[[Answers], StateType]) -> DalyInsightSensorEntityDescription:
    """A top-of-charge difference (mV): unknown on a day the pack never passed the upper knee."""
    return DalyInsightSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.VOLTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfElectricPotential.MILLIVOLT,
        suggested_display_precision=0,
        value_fn=value_fn,
    )


INSIGHT_SENSORS: tuple[DalyInsightSensorEntityDescription, ...] = (
    _top_difference("top_difference_today", lambda answers: answers.top_difference_today),
    _top_difference("top_difference_yesterday", lambda answers: answers.top_difference_yesterday),
    # Unknown below 3 days with a top of charge (the insights' minimum for a fitted slope).
    DalyInsightSensorEntityDescription(
        key="difference_trend",
        translation_key="difference_trend",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=MILLIVOLTS_PER_DAY,
        suggested_display_precision=1,
        value_fn=lambda answers: None if answers.trend is None else round(answers.trend, 2),
    ),
    # A daily total: it only grows during the day and falls to 0 at local midnight, which
    # long-term statistics read as a new meter cycle. Whole seconds, rounded down: the stored
    # tenths of a second never make a restart look like a fall (a reset).
    DalyInsightSensorEntityDescription(
        key="balancing_time_today",
        translation_key="balancing_time_today",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        suggested_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        value_fn=lambda answers: int(answers.balancing_today_s),
    ),
    # Cell numbers are labels, not quantities: no state class (as the lowest / highest cell).
    DalyInsightSensorEntityDescription(
        key="weakest_cell",
        translation_key="weakest_cell",
        value_fn=lambda answers: answers.weakest_cell,
        counts_fn=lambda answers: answers.lowest_at_bottom,
    ),
    DalyInsightSensorEntityDescription(
        key="highest_cell_at_top",
        translation_key="highest_cell_at_top",
        value_fn=lambda answers: answers.highest_cell_at_top,
        counts_fn=lambda answers: answers.highest_at_top,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DalyConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors the module has, the link's and the pack insights'."""
    async_add_present_entities(entry, SENSORS, DalySensor, async_add_entities)
    coordinator = entry.runtime_data
    async_add_entities(
        DalyLinkSensor(coordinator, description)
        for description in LINK_SENSORS
        if coordinator.is_ble or not description.ble_only
    )
    async_add_entities(DalyInsightSensor(coordinator, description) for description in INSIGHT_SENSORS)


class DalySensor(DalyEntity, SensorEntity):
    """A value the module measures."""

    entity_description: DalySensorEntityDescription

    @property
    @override
    def native_value(self) -> StateType:
        """The value from the latest poll."""
        return self.entity_description.value_fn(self.coordinator.data)


class DalyLinkSensor(DalyLocalEntity, SensorEntity):
    """How well the link works: available while the module is silent, which is when it matters."""

    entity_description: DalyLinkSensorEntityDescription

    @property
    @override
    def native_value(self) -> StateType | datetime:
        """The counter's value now."""
        return self.entity_description.value_fn(self.coordinator)


class DalyInsightSensor(DalyEntity, SensorEntity):
    """What the pack insights say, from the days kept across restarts."""

    entity_description: DalyInsightSensorEntityDescription
    # One count per cell and poll: the state sums them up, so keep them out of the history.
    _unrecorded_attributes = frozenset({ATTR_COUNTS})

    @property
    @override
    def native_value(self) -> StateType:
        """The insights' answer after the latest poll."""
        return self.entity_description.value_fn(self.coordinator.insights.answers)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Per cell (item i: cell i + 1), how often it was lowest at the bottom or highest at the top."""
        counts_fn = self.entity_description.counts_fn
        if counts_fn is None:
            return None
        counts = list(counts_fn(self.coordinator.insights.answers))
        cells = len(self.coordinator.data.status.cell_voltages)
        return {ATTR_COUNTS: counts + [0] * (cells - len(counts))}
