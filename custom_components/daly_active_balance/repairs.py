"""Repair issues from the seed manual's rules; each clears itself when its condition goes away.

* a cell outside its chemistry's plausible range, or at 0 V: a wiring or sampling-cable fault;
* the string count the module is set to differs from the cells it reports;
* a pack below 10 V, where the manual forbids the module;
* the module stopped answering for longer than its sleep time (suggest 65535 = never sleep).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from homeassistant.core import callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .protocol.registers import CHEMISTRY, MIN_PACK_VOLTAGE, SLEEP_NEVER, chemistry_of

if TYPE_CHECKING:
    from .coordinator import DalyCoordinator, DalyData

ISSUE_CELL_OUT_OF_RANGE = "cell_out_of_range"
ISSUE_STRING_COUNT = "string_count_mismatch"
ISSUE_PACK_VOLTAGE_LOW = "pack_voltage_low"
ISSUE_STOPPED_ANSWERING = "stopped_answering"
ISSUES = (ISSUE_CELL_OUT_OF_RANGE, ISSUE_STRING_COUNT, ISSUE_PACK_VOLTAGE_LOW, ISSUE_STOPPED_ANSWERING)


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
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(coordinator, issue),
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR if issue != ISSUE_STOPPED_ANSWERING else ir.IssueSeverity.WARNING,
        translation_key=issue,
        translation_placeholders={"title": coordinator.config_entry.title, **placeholders},
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
    status, settings = data.status, data.settings

    placeholders: dict[str, str] | None = None
    chemistry_key = chemistry_of(settings.battery_type)
    chemistry = CHEMISTRY[chemistry_key]
    bad = [
        f"{number} ({volts:.3f} V)"
        for number, volts in enumerate(status.cell_voltages, start=1)
        if volts <= 0 or not chemistry.plausible_min <= volts <= chemistry.plausible_max
    ]
    if bad:
        placeholders = {
            "cells": ", ".join(bad),
            "chemistry": chemistry_key.value,
            "minimum": f"{chemistry.plausible_min:.2f}",
            "maximum": f"{chemistry.plausible_max:.2f}",
        }
    _set(coordinator, ISSUE_CELL_OUT_OF_RANGE, placeholders)

    mismatch = settings.string_count is not None and status.cell_count and settings.string_count != status.cell_count
    _set(
        coordinator,
        ISSUE_STRING_COUNT,
        {"configured": str(settings.string_count), "reported": str(status.cell_count)} if mismatch else None,
    )

    low = status.pack_voltage is not None and status.pack_voltage < MIN_PACK_VOLTAGE
    _set(
        coordinator,
        ISSUE_PACK_VOLTAGE_LOW,
        {"voltage": f"{status.pack_voltage:.1f}", "minimum": f"{MIN_PACK_VOLTAGE:.0f}"} if low else None,
    )


@callback
def async_delete_issues(coordinator: DalyCoordinator) -> None:
    """Remove this entry's issues (on unload)."""
    for issue in ISSUES:
        _set(coordinator, issue, None)
