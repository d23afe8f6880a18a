"""Numbers: the module's balance thresholds, sleep time and string count.

Ranges and steps come from the register table; the balance turn-on voltage is further bounded
by the configured chemistry. Every write is verified by the coordinator (read back, translated
errors) and followed by a refresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import log10
from typing import override

from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.const import EntityCategory, UnitOfElectricPotential
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from aiodalybalancer.models import ProtocolFamily, Settings
from aiodalybalancer.registers import balance_voltage_range

from .const import DOMAIN
from .coordinator import DalyConfigEntry, DalyData
from .entity import (
    DalySettingEntity,
    DalySettingEntityDescription,
    async_add_present_entities,
    enabled_by_default,
)
from .writes import BALANCE_START_DELTA, BALANCE_START_VOLTAGE, SLEEP_TIME, STRING_COUNT, Writable

# One write at a time: the module answers one request at a time anyway.
PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class DalyNumberEntityDescription(NumberEntityDescription, DalySettingEntityDescription):
    """A numeric setting; ``setting`` says which register it writes."""

    value_fn: Callable[[Settings], float | None]
    #: Range in the register's unit that depends on other settings (the table's otherwise).
    range_fn: Callable[[Settings], tuple[float, float]] | None = None
    #: Shown value = register value × factor (a display unit other than the table's).
    factor: float = 1.0
    #: A value shorter than the time between polls is refused (the sleep time: a module that
    #: falls asleep before every poll loses each poll's first request and answers only its retry).
    outlast_polls: bool = False

    def to_native(self, value: float) -> float:
        """A value in the register's unit as shown (no float noise from the factor)."""
        decimals = max(0, self.setting.register.decimals - round(log10(self.factor)))
        return round(value * self.factor, decimals)

    def to_register(self, value: float) -> float | int:
        """A shown value in the register's unit (whole numbers as int, as the module counts)."""
        converted = value / self.factor
        return int(converted) if float(converted).is_integer() else converted


def _setting(
    key: str,
    setting: Writable,
    *,
    value_fn: Callable[[Settings], float | None],
    device_class: NumberDeviceClass | None = None,
    mode: NumberMode = NumberMode.AUTO,
    factor: float = 1.0,
    unit: str | None = None,
    range_fn: Callable[[Settings], tuple[float, float]] | None = None,
    outlast_polls: bool = False,
) -> DalyNumberEntityDescription:
    """A setting whose range, step, unit and default visibility come from its register."""
    reg = setting.register
    assert reg.writable and reg.minimum is not None and reg.maximum is not None and reg.step is not None

    def scaled(value: float) -> float:
        return round(value * factor, 9)

    return DalyNumberEntityDescription(
        key=key,
        translation_key=key,
        setting=setting,
        entity_category=EntityCategory.CONFIG,
        entity_registry_enabled_default=enabled_by_default(reg.key),
        device_class=device_class,
        mode=mode,
        native_min_value=scaled(reg.minimum),
        native_max_value=scaled(reg.maximum),
        native_step=scaled(reg.step),
        native_unit_of_measurement=unit or reg.unit,
        factor=factor,
        range_fn=range_fn,
        outlast_polls=outlast_polls,
        value_fn=value_fn,
        # Writes exist only in the D2 protocol; a legacy A5 module gets no setting entities.
        exists_fn=lambda data: data.status.protocol is ProtocolFamily.D2 and value_fn(data.settings) is not None,
    )


NUMBERS: tuple[DalyNumberEntityDescription, ...] = (
    _setting(
        "balance_start_voltage",
        BALANCE_START_VOLTAGE,
        device_class=NumberDeviceClass.VOLTAGE,
        mode=NumberMode.BOX,
        range_fn=lambda settings: balance_voltage_range(settings.battery_type),
        value_fn=lambda settings: settings.balance_start_voltage,
    ),
    # The table keeps volts; a difference of a few millivolts reads better in mV.
    _setting(
        "balance_start_delta",
        BALANCE_START_DELTA,
        device_class=NumberDeviceClass.VOLTAGE,
        mode=NumberMode.BOX,
        factor=1000,
        unit=UnitOfElectricPotential.MILLIVOLT,
        value_fn=lambda settings: settings.balance_start_delta,
    ),
    # 65535 s = never sleep: the "Never sleep" switch sets it (switch.py).
    _setting(
        "sleep_time",
        SLEEP_TIME,
        device_class=NumberDeviceClass.DURATION,
        mode=NumberMode.BOX,
        value_fn=lambda settings: settings.sleep_time,
        outlast_polls=True,
    ),
    # [INF] 0x0083 is inferred to be the app's "number of strings": disabled by default.
    _setting("string_count", STRING_COUNT, value_fn=lambda settings: settings.string_count),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DalyConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the settings the module has."""
    async_add_present_entities(entry, NUMBERS, DalyNumber, async_add_entities)


class DalyNumber(DalySettingEntity, NumberEntity):
    """A numeric setting of the module."""

    entity_description: DalyNumberEntityDescription

    def _range(self) -> tuple[float, float] | None:
        description = self.entity_description
        if description.range_fn is None:
            return None
        data: DalyData = self.coordinator.data
        low, high = description.range_fn(data.settings)
        return description.to_native(low), description.to_native(high)

    @property
    @override
    def native_min_value(self) -> float:
        """The lowest value allowed (the chemistry's, for the balance turn-on voltage)."""
        bounds = self._range()
        return super().native_min_value if bounds is None else bounds[0]

    @property
    @override
    def native_max_value(self) -> float:
        """The highest value allowed (the chemistry's, for the balance turn-on voltage)."""
        bounds = self._range()
        return super().native_max_value if bounds is None else bounds[1]

    @property
    @override
    def native_value(self) -> float | None:
        """The value from the latest settings read."""
        value = self.entity_description.value_fn(self.coordinator.data.settings)
        return None if value is None else self.entity_description.to_native(value)

    @override
    def shown(self, value: object) -> str:
        """A register value in the unit this number shows (mV for the turn-on difference)."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return str(value)
        unit = self.native_unit_of_measurement
        return f"{self.entity_description.to_native(value):g} {unit or ''}".rstrip()

    @override
    async def async_set_native_value(self, value: float) -> None:
        """Write the value to the module (verified; raises a translated error)."""
        interval = self.coordinator.update_interval
        if self.entity_description.outlast_polls and interval is not None and value < interval.total_seconds():
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="sleep_time_shorter_than_polls",
                translation_placeholders={
                    "setting": self.name if isinstance(self.name, str) else self.entity_description.key,
                    "value": f"{value:g}",
                    "interval": f"{interval.total_seconds():g}",
                },
            )
        await self.async_write(self.entity_description.to_register(value))
