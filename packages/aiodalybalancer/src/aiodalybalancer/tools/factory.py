"""What a fresh simulated module holds: each register's raw value as the captured balancer had it.

The register table (``aiodalybalancer/registers.py``) says what a register means; the values a module
leaves the factory with belong to the simulator alone, so they are kept here. A register not
named here holds zeros.
"""

from __future__ import annotations

from collections.abc import Mapping
import struct
from typing import Final

from aiodalybalancer.registers import RAW_ABSENT, SLEEP_DEFAULT, Register

#: The captured 16S LiFePO4 pack at rest: every cell 3.335 V, one sensor at 28 °C (raw + 40).
_CELL_MV: Final = 3335
_CELLS: Final = 16
_TEMPERATURE_RAW: Final = 68

#: Raw value per register key: one int for every word, a tuple of words, or text for ASCII.
FACTORY: Final[Mapping[str, int | tuple[int, ...] | str]] = {
    "cell_voltages": (_CELL_MV,) * _CELLS + (0,) * (32 - _CELLS),
    # Slots 7 and 8 hold the pack and the average cell voltage on the balancer.
    "temperatures": (_TEMPERATURE_RAW, 0, 0, 0, 0, 0, 533, _CELL_MV),
    "pack_voltage": 533,
    "current": 30000,
    "max_cell_voltage": _CELL_MV,
    "min_cell_voltage": _CELL_MV,
    "max_temperature": _TEMPERATURE_RAW,
    "min_temperature": _TEMPERATURE_RAW,
    "cell_count": _CELLS,
    "temperature_sensor_count": 1,
    "average_cell_voltage": _CELL_MV,
    "balance_current": 30000,
    "mos_temperature": RAW_ABSENT,
    "rated_capacity": 500,
    "cell_reference_voltage": 3200,
    "board_count": 1,
    "string_count": _CELLS,
    "temperature_sensor_setting": 1,
    "sleep_time": SLEEP_DEFAULT,
    "cell_overvoltage_warning": 3550,
    "cell_overvoltage_alarm": 3650,
    "cell_undervoltage_warning": 2300,
    "cell_undervoltage_alarm": 2200,
    "balance_start_voltage": 3300,
    "balance_start_delta": 20,
    "software_version": "B002_111132_03",
    "hardware_version": "E303-032DG-SMB",
    "password": "123456",
    "production_date": (0x0001, 0x0100),  # 2000-01-01: unset
    "register_00ce": _CELLS,
    "balancer_enabled": 1,
    "register_00d0": 10,
}


def encode_ascii(text: str, count: int) -> tuple[int, ...]:
    """Pack ASCII text into ``count`` words, NUL-padded."""
    data = text.encode("ascii")[: count * 2].ljust(count * 2, b"\x00")
    return struct.unpack(f">{count}H", data)


def factory_words(reg: Register) -> tuple[int, ...]:
    """The raw words a fresh simulated module holds for ``reg``."""
    value = FACTORY.get(reg.key, 0)
    if isinstance(value, str):
        return encode_ascii(value, reg.count)
    if isinstance(value, tuple):
        return value
    return (value,) * reg.count
