"""The settings entities write: each one's register, and where a verified value lands in the data.

An entity description carries one of these, never a register key: the key stays the table's
business, and renaming a register cannot orphan an entity or misdirect a write. Where a verified
value lands follows from the register alone: ``Settings`` and ``Status`` name their fields after
register keys, and the register's kind says the value's type.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Final

from aiodalybalancer.models import Settings, Status
from aiodalybalancer.registers import DecodedValue, Kind, Register, register

_SETTINGS_FIELDS: Final = frozenset(field.name for field in fields(Settings))
_STATUS_FIELDS: Final = frozenset(field.name for field in fields(Status))


def _typed(reg: Register, value: DecodedValue) -> bool | int | float | str:
    """A verified value as the data holds it: the type its register's kind decodes to."""
    if reg.kind is Kind.FLAG:
        return bool(value)
    if reg.kind is Kind.ENUM:
        assert isinstance(value, str), value
        return value
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    return float(value) if reg.decimals else int(value)


@dataclass(frozen=True, slots=True)
class Writable:
    """A setting an entity writes: its register, whose key names the field a verified value updates."""

    register: Register

    def __post_init__(self) -> None:
        """Refuse a register no entity can write, or whose value has no field to land in."""
        key = self.register.key
        if not self.register.writable or (key not in _SETTINGS_FIELDS and key not in _STATUS_FIELDS):
            raise ValueError(f"{key}: not a writable register of Settings or Status")

    def apply(self, status: Status, settings: Settings, value: DecodedValue) -> tuple[Status, Settings]:
        """The status and settings with the verified ``value`` in the register's field."""
        # The field is the register's key, checked at construction: mypy cannot follow it.
        change: dict[str, Any] = {self.register.key: _typed(self.register, value)}
        if self.register.key in _SETTINGS_FIELDS:
            return status, replace(settings, **change)
        return replace(status, **change), settings


BALANCE_START_VOLTAGE: Final = Writable(register("balance_start_voltage"))
BALANCE_START_DELTA: Final = Writable(register("balance_start_delta"))
SLEEP_TIME: Final = Writable(register("sleep_time"))
STRING_COUNT: Final = Writable(register("string_count"))
BATTERY_TYPE: Final = Writable(register("battery_type"))
#: The balancer switch lives in the status block (register 0x00CF), not in the settings.
BALANCER_ENABLED: Final = Writable(register("balancer_enabled"))
