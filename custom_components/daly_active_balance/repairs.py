"""Repair issues from the seed manual's rules; each clears itself when its condition goes away.

* a cell outside its chemistry's plausible range, or at 0 V: a wiring or sampling-cable fault;
* the string count the module is set to differs from the cells it reports;
* a pack below 10 V, where the manual forbids the module;
* a balance turn-on voltage outside the battery type's range (after the type was changed):
  balancing can never start, and the issue names the setting to fix;
* the module stopped answering for longer than its sleep time (suggest 65535 = never sleep).

Measured conditions are debounced: an issue is raised once its condition held for
``RAISE_AFTER`` polls in a row, and cleared once it was gone for ``CLEAR_AFTER`` polls, where
"gone" for a voltage means back inside its range by a margin (hysteresis). Placeholders hold
what the user acts on (which cells, the range, the setting), never a live reading, so a
drifting value does not rewrite the issue on every poll.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import TYPE_CHECKING, Final

from homeassistant.core import callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .protocol.redact import redact
from .protocol.registers import CHEMISTRY, MIN_PACK_VOLTAGE, SLEEP_NEVER, balance_voltage_range, chemistry_of

if TYPE_CHECKING:
    from .coordinator import DalyCoordinator, DalyData

ISSUE_CELL_OUT_OF_RANGE = "cell_out_of_range"
ISSUE_STRING_COUNT = "string_count_mismatch"
ISSUE_PACK_VOLTAGE_LOW = "pack_voltage_low"
ISSUE_BALANCE_VOLTAGE = "balance_voltage_out_of_range"
ISSUE_STOPPED_ANSWERING = "stopped_answering"
ISSUES = (
    ISSUE_CELL_OUT_OF_RANGE,
    ISSUE_STRING_COUNT,
    ISSUE_PACK_VOLTAGE_LOW,
    ISSUE_BALANCE_VOLTAGE,
    ISSUE_STOPPED_ANSWERING,
)
_WARNINGS: Final = frozenset({ISSUE_STOPPED_ANSWERING, ISSUE_BALANCE_VOLTAGE})

#: Polls in a row a measured condition must hold before its issue is raised.
RAISE_AFTER: Final = 3
#: Polls in a row it must be gone before its issue is cleared.
CLEAR_AFTER: Final = 3
#: How far inside its plausible range a cell must be before it counts as plausible again (V).
CELL_HYSTERESIS: Final = 0.05
#: How far above the minimum the pack must be before the low-pack issue clears (V).
PACK_HYSTERESIS: Final = 0.5


@dataclass(slots=True)
class _Debounced:
    raised: bool = False
    #: Polls in a row that pointed the other way.
    streak: int = 0


@dataclass(slots=True)
class IssueState:
    """What the debouncing remembers between polls, per condition (a coordinator holds one)."""

    _conditions: dict[str, _Debounced] = field(default_factory=dict)

    def update(self, key: str, *, bad: bool, good: bool, hold: int = RAISE_AFTER) -> bool:
        """Whether condition ``key`` is raised after this poll.

        ``bad`` raises it after ``hold`` polls in a row; ``good`` (stricter than "not bad":
        the hysteresis) clears it after ``CLEAR_AFTER`` (``hold`` when shorter); a reading in
        between keeps it as it is.
        """
        state = self._conditions.setdefault(key, _Debounced())
        turning = good if state.raised else bad
        state.streak = state.streak + 1 if turning else 0
        if state.streak >= (min(hold, CLEAR_AFTER) if state.raised else hold):
            state.raised = not state.raised
            state.streak = 0
        return state.raised


def issue_id(coordinator: DalyCoordinator, issue: str) -> str:
    """The issue registry id of ``issue`` for this entry."""
    return f"{issue}_{coordinator.config_entry.entry_id}"


@callback
def _set(coordinator: DalyCoordinator, issue: str, placeholders: dict[str, str] | None) -> None:
    """Create the issue with these placeholders, or delete it when they are None."""
    hass = coordinator.hass
    if placeholders is None:
        ir.async_delete_issue(hass, DOMAIN, issue_id(coordinator, issue))
        return
    link = coordinator.link
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(coordinator, issue),
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.WARNING if issue in _WARNINGS else ir.IssueSeverity.ERROR,
        translation_key=issue,
        translation_placeholders={
            key: redact(value, link) for key, value in {"title": coordinator.config_entry.title, **placeholders}.items()
        },
    )


@callback
def async_update_issues(coordinator: DalyCoordinator, data: DalyData | None) -> None:
    """Raise or clear every issue after a poll (``data`` is None when the poll failed)."""
    if data is None:
        settings = coordinator.settings
        sleep = settings.sleep_time if settings is not None else None
        last = coordinator.last_success
        if sleep is not None and sleep != SLEEP_NEVER and last is not None and time.monotonic() - last > sleep:
            _set(coordinator, ISSUE_STOPPED_ANSWERING, {"sleep_time": str(sleep)})
        # The other conditions are unknown while the module is silent: leave them as they are.
        return
    _set(coordinator, ISSUE_STOPPED_ANSWERING, None)
    state = coordinator.issue_state
    status, settings = data.status, data.settings

    chemistry_key = chemistry_of(settings.battery_type)
    chemistry = CHEMISTRY[chemistry_key]
    low, high = chemistry.plausible_min, chemistry.plausible_max
    cells = [
        str(number)
        for number, volts in enumerate(status.cell_voltages, start=1)
        if volts is not None
        and state.update(
            f"{ISSUE_CELL_OUT_OF_RANGE}:{chemistry_key}:{number}",
            bad=volts <= 0 or not low <= volts <= high,
            good=volts > 0 and low + CELL_HYSTERESIS <= volts <= high - CELL_HYSTERESIS,
        )
    ]
    _set(
        coordinator,
        ISSUE_CELL_OUT_OF_RANGE,
        {
            "cells": ", ".join(cells),
            "chemistry": chemistry_key.value,
            "minimum": f"{low:.2f}",
            "maximum": f"{high:.2f}",
        }
        if cells
        else None,
    )

    mismatch = bool(
        settings.string_count is not None and status.cell_count and settings.string_count != status.cell_count
    )
    _set(
        coordinator,
        ISSUE_STRING_COUNT,
        {"configured": str(settings.string_count), "reported": str(status.cell_count)}
        if state.update(ISSUE_STRING_COUNT, bad=mismatch, good=not mismatch)
        else None,
    )

    pack = status.pack_voltage
    _set(
        coordinator,
        ISSUE_PACK_VOLTAGE_LOW,
        {"minimum": f"{MIN_PACK_VOLTAGE:.0f}"}
        if pack is not None
        and state.update(
            ISSUE_PACK_VOLTAGE_LOW, bad=pack < MIN_PACK_VOLTAGE, good=pack >= MIN_PACK_VOLTAGE + PACK_HYSTERESIS
        )
        else None,
    )

    # A setting, not a measurement: raised and cleared on the first poll that shows it.
    start = settings.balance_start_voltage
    floor, ceiling = balance_voltage_range(settings.battery_type)
    outside = start is not None and not floor <= start <= ceiling
    _set(
        coordinator,
        ISSUE_BALANCE_VOLTAGE,
        {
            "value": f"{start:.2f}",
            "chemistry": chemistry_key.value,
            "minimum": f"{floor:.2f}",
            "maximum": f"{ceiling:.2f}",
        }
        if start is not None and state.update(ISSUE_BALANCE_VOLTAGE, bad=outside, good=not outside, hold=1)
        else None,
    )


@callback
def async_delete_issues(coordinator: DalyCoordinator) -> None:
    """Remove this entry's issues (on unload)."""
    for issue in ISSUES:
        _set(coordinator, issue, None)
