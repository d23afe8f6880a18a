"""Typed results the client returns: built from blocks decoded through the register table.

Field names are register keys (a test checks that each one exists in the table), so a value's
address, scale and unit stay written only in ``registers.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from .registers import MAX_CELLS, TEMPERATURE_SLOTS, DecodedValue

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class ProtocolFamily(StrEnum):
    """Which frame family a module answers."""

    D2 = "d2"
    A5 = "a5"


def _pick[T: DataclassInstance](cls: type[T], decoded: Mapping[str, DecodedValue], **extra: Any) -> T:
    """Build ``cls`` from the decoded values whose keys are its field names."""
    values = {field.name: decoded[field.name] for field in fields(cls) if field.name in decoded}
    values.update(extra)
    return cls(**values)


def _float(value: DecodedValue) -> float | None:
    """A decoded number as a float (``None`` when absent or not a number)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: DecodedValue) -> int | None:
    """A decoded whole number (``None`` when absent or not one)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class CellSummary(NamedTuple):
    """Highest, lowest and average cell voltage and their difference, from one cell list."""

    max_cell_voltage: float | None
    min_cell_voltage: float | None
    average_cell_voltage: float | None
    cell_delta: float | None


def cell_summary(cells: tuple[float | None, ...]) -> CellSummary:
    """The summary of a cell list (absent cells left out; rounded to the mV cells are measured in).

    The module also keeps these in registers, sampled at another moment than the cell list: a
    lowest cell number taken from the list beside a lowest voltage taken from a register could
    name a cell that does not have that voltage, so both come from the list.
    """
    measured = [volts for volts in cells if volts is not None]
    if not measured:
        return CellSummary(None, None, None, None)
    high, low = max(measured), min(measured)
    return CellSummary(high, low, round(sum(measured) / len(measured), 3), round(high - low, 3))


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """What the module measures right now (live + extended + balancer blocks)."""

    #: One per cell the module reports; None where the module marks a cell absent (0xFFFF).
    cell_voltages: tuple[float | None, ...]
    #: One per temperature sensor; None where the slot holds no reading.
    temperatures: tuple[float | None, ...] = ()
    pack_voltage: float | None = None
    current: float | None = None
    max_cell_voltage: float | None = None
    min_cell_voltage: float | None = None
    average_cell_voltage: float | None = None
    cell_delta: float | None = None
    cell_count: int = 0
    temperature_sensor_count: int = 0
    balancing: bool | None = None
    balancing_cells: tuple[bool, ...] | None = None
    balance_current: float | None = None
    mos_temperature: float | None = None
    board_temperature: float | None = None
    faults: tuple[int, ...] = ()
    balancer_enabled: bool | None = None
    register_00ce: int | None = None
    register_00d0: int | None = None
    protocol: ProtocolFamily = ProtocolFamily.D2

    def _measured_cells(self) -> list[tuple[float, int]]:
        return [(volts, number) for number, volts in enumerate(self.cell_voltages, start=1) if volts is not None]

    @property
    def max_cell(self) -> int | None:
        """1-based number of the highest cell in the cell list (absent cells left out)."""
        # The first of equal cells, as max() over the list gives it.
        return max(self._measured_cells(), key=lambda cell: (cell[0], -cell[1]), default=(None, None))[1]

    @property
    def min_cell(self) -> int | None:
        """1-based number of the lowest cell in the cell list (absent cells left out)."""
        return min(self._measured_cells(), default=(None, None))[1]

    @classmethod
    def from_d2(
        cls,
        live: Mapping[str, DecodedValue],
        extended: Mapping[str, DecodedValue] | None,
        balancer: Mapping[str, DecodedValue] | None,
    ) -> Self:
        """Combine decoded D2 blocks, keeping only the cells and sensors the module reports."""
        cells_all = live["cell_voltages"]
        temps_all = live["temperatures"]
        assert isinstance(cells_all, tuple) and isinstance(temps_all, tuple)
        count = live["cell_count"]
        cell_count = count if isinstance(count, int) and 0 < count <= MAX_CELLS else 0
        if not cell_count:
            # The count register is implausible: trust the cells that carry a voltage.
            cell_count = sum(1 for v in cells_all[:MAX_CELLS] if v)
        sensors = live["temperature_sensor_count"]
        if isinstance(sensors, int) and 0 <= sensors <= TEMPERATURE_SLOTS:
            sensor_count = sensors
        else:
            # The count is absent or above the slots that exist (slots 7/8 hold pack and average
            # voltage on the balancer): show the slots up to the last one that carries a value.
            slots = temps_all[:TEMPERATURE_SLOTS]
            sensor_count = max((i + 1 for i, t in enumerate(slots) if t is not None), default=0)
        extended = extended or {}
        balancer = balancer or {}
        bitmap = extended.get("balancing_cells")
        balancing_cells: tuple[bool, ...] | None = None
        if isinstance(bitmap, tuple) and all(isinstance(word, int) for word in bitmap):
            bits = sum(int(word or 0) << (16 * i) for i, word in enumerate(bitmap))
            balancing_cells = tuple([bool(bits >> i & 1) for i in range(cell_count)])
        faults = live["faults"]
        cell_voltages = tuple([None if v is None else float(v) for v in cells_all[:cell_count]])
        summary = cell_summary(cell_voltages)
        balancing, balancer_enabled = live["balancing"], balancer.get("balancer_enabled")
        return cls(
            cell_voltages=cell_voltages,
            temperatures=tuple([None if t is None else float(t) for t in temps_all[:sensor_count]]),
            pack_voltage=_float(live["pack_voltage"]),
            current=_float(live["current"]),
            max_cell_voltage=summary.max_cell_voltage,
            min_cell_voltage=summary.min_cell_voltage,
            average_cell_voltage=summary.average_cell_voltage,
            cell_delta=summary.cell_delta,
            cell_count=cell_count,
            temperature_sensor_count=sensor_count,
            balancing=balancing if isinstance(balancing, bool) else None,
            balancing_cells=balancing_cells,
            balance_current=_float(extended.get("balance_current")),
            mos_temperature=_float(extended.get("mos_temperature")),
            board_temperature=_float(extended.get("board_temperature")),
            faults=tuple([int(f or 0) for f in faults]) if isinstance(faults, tuple) else (),
            balancer_enabled=balancer_enabled if isinstance(balancer_enabled, bool) else None,
            register_00ce=_int(balancer.get("register_00ce")),
            register_00d0=_int(balancer.get("register_00d0")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The module's settings (block 0x0080…); ``None`` where the protocol family lacks one."""

    string_count: int | None = None
    battery_type: str | None = None
    sleep_time: int | None = None
    balance_start_voltage: float | None = None
    balance_start_delta: float | None = None
    rated_capacity: float | None = None
    cell_reference_voltage: float | None = None
    cell_overvoltage_warning: float | None = None
    cell_overvoltage_alarm: float | None = None
    cell_undervoltage_warning: float | None = None
    cell_undervoltage_alarm: float | None = None
    cell_delta_warning: float | None = None
    cell_delta_alarm: float | None = None

    @classmethod
    def from_decoded(cls, decoded: Mapping[str, DecodedValue]) -> Self:
        """Build from a decoded settings block."""
        return _pick(cls, decoded)


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Who the module is. The password is a secret: it is left out of ``repr``."""

    software_version: str | None = None
    hardware_version: str | None = None
    serial_number: str | None = None
    production_date: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_decoded(cls, *blocks: Mapping[str, DecodedValue]) -> Self:
        """Build from decoded identity/password/balancer blocks."""
        merged: dict[str, DecodedValue] = {}
        for block in blocks:
            merged.update(block)
        return _pick(cls, {k: (v or None) if isinstance(v, str) else v for k, v in merged.items()})
