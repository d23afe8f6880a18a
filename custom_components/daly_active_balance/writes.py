"""The settings entities write: each one's register, and where a verified value lands in the data.

An entity description carries one of these, never a register key: the key stays the table's
business, and renaming a register cannot orphan an entity or misdirect a write. ``apply`` puts
the value the module confirmed into the status and settings the entities read, with no lookup of
fields by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from aiodalybalancer.models import Settings, Status
from aiodalybalancer.registers import DecodedValue, Register, register

type Apply = Callable[[Status, Settings, DecodedValue], tuple[Status, Settings]]


@dataclass(frozen=True, slots=True)
class Writable:
    """A setting an entity writes: its register, and how a verified value enters the data."""

    register: Register
    apply: Apply


def _number(value: DecodedValue) -> float:
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    return float(value)


def _whole(value: DecodedValue) -> int:
    return int(_number(value))


def _text(value: DecodedValue) -> str:
    assert isinstance(value, str), value
    return value


def _in_settings(update: Callable[[Settings, DecodedValue], Settings]) -> Apply:
    return lambda status, settings, value: (status, update(settings, value))


BALANCE_START_VOLTAGE = Writable(
    register("balance_start_voltage"),
    _in_settings(lambda settings, value: replace(settings, balance_start_voltage=_number(value))),
)
BALANCE_START_DELTA = Writable(
    register("balance_start_delta"),
    _in_settings(lambda settings, value: replace(settings, balance_start_delta=_number(value))),
)
SLEEP_TIME = Writable(
    register("sleep_time"),
    _in_settings(lambda settings, value: replace(settings, sleep_time=_whole(value))),
)
STRING_COUNT = Writable(
    register("string_count"),
    _in_settings(lambda settings, value: replace(settings, string_count=_whole(value))),
)
BATTERY_TYPE = Writable(
    register("battery_type"),
    _in_settings(lambda settings, value: replace(settings, battery_type=_text(value))),
)
#: The balancer switch lives in the status block (register 0x00CF), not in the settings.
BALANCER_ENABLED = Writable(
    register("balancer_enabled"),
    lambda status, settings, value: (replace(status, balancer_enabled=bool(value)), settings),
)
