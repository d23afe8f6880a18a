"""The pack checks: the seed manual's rules and the balancing expectation, judged once per poll.

* a cell outside its chemistry's plausible range, or at 0 V: a wiring or sampling-cable fault;
* the string count the module is set to differs from the cells it reports;
* a pack below the manual's minimum (2 V), where it forbids the module;
* a balance turn-on voltage outside the battery type's range (after the type was changed):
  balancing can never start;
* the module stopped answering;
* the module's own balancing reports (register 0x0034, the balance current 0x0040) disagree
  with what the two turn-on conditions of the manual predict.

Measured conditions are debounced: a finding is raised once its condition held for
``RAISE_AFTER`` polls in a row, and cleared once it was gone for ``CLEAR_AFTER`` polls, where
"gone" for a voltage means back inside its range by a margin (hysteresis). The balancing
reports must disagree for ``DOUBT_AFTER`` seconds of polls. The findings are plain data: the
repair issues (``issues``) and the pack-check entities read the same ones. Nothing here imports
Home Assistant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from aiodalybalancer.models import Settings, Status
from aiodalybalancer.registers import (
    CHEMISTRY,
    MIN_PACK_VOLTAGE,
    BatteryType,
    balance_voltage_range,
    chemistry_of,
    register,
)

#: Polls in a row a measured condition must hold before it is raised.
RAISE_AFTER: Final = 3
#: Polls in a row it must be gone before it is cleared.
CLEAR_AFTER: Final = 3
#: How far inside its plausible range a cell must be before it counts as plausible again (V).
CELL_HYSTERESIS: Final = 0.05
#: How far above the minimum the pack must be before the low-pack finding clears (V).
PACK_HYSTERESIS: Final = 0.5
#: Seconds of polls the module's balancing reports must contradict the expectation.
DOUBT_AFTER: Final = 600.0
#: A balance current at least this large (A, either sign: the sign is unknown) reads as balancing.
BALANCE_CURRENT_ACTIVE: Final = 0.01

#: The registers whose balancing meaning is in doubt, as the repair names them.
BALANCING_REGISTER: Final = f"0x{register('balancing').address:04X}"
BALANCE_CURRENT_REGISTER: Final = f"0x{register('balance_current').address:04X}"


class Reason(StrEnum):
    """Why the pack check is on (also the repair issue's key)."""

    CELL_OUT_OF_RANGE = "cell_out_of_range"
    STRING_COUNT = "string_count_mismatch"
    PACK_VOLTAGE_LOW = "pack_voltage_low"
    BALANCE_VOLTAGE = "balance_voltage_out_of_range"
    STOPPED_ANSWERING = "stopped_answering"


#: The doubt about the module's balancing registers (also its repair issue's key).
VERIFY_BALANCING: Final = "verify_balancing"
#: The start of the debounce keys of the cell conditions (one per chemistry and cell).
_CELL_KEY: Final = f"{Reason.CELL_OUT_OF_RANGE}:"


@dataclass(frozen=True, slots=True)
class OutOfRange:
    """A setting outside the range it must be in."""

    value: float
    minimum: float
    maximum: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Findings:
    """What the checks found after the latest poll (empty before the first)."""

    #: Cells (1-based) outside their chemistry's plausible range or at 0 V.
    cells: tuple[int, ...] = ()
    #: The chemistry the cells were judged by.
    chemistry: BatteryType = BatteryType.LIFEPO4
    #: (configured, measured) while the string count differs from the cells measured.
    string_count: tuple[int, int] | None = None
    pack_voltage_low: bool = False
    #: The balance turn-on voltage and the battery type's range, while it is outside that range.
    balance_voltage: OutOfRange | None = None
    stopped_answering: bool = False
    #: Registers (hex addresses) whose balancing report contradicted the expectation for long.
    balancing_doubt: tuple[str, ...] = ()

    @property
    def reasons(self) -> list[Reason]:
        """The pack-check reasons that hold, in a fixed order."""
        held = {
            Reason.CELL_OUT_OF_RANGE: bool(self.cells),
            Reason.STRING_COUNT: self.string_count is not None,
            Reason.PACK_VOLTAGE_LOW: self.pack_voltage_low,
            Reason.BALANCE_VOLTAGE: self.balance_voltage is not None,
            Reason.STOPPED_ANSWERING: self.stopped_answering,
        }
        return [reason for reason, on in held.items() if on]


def balancing_expected(status: Status, settings: Settings) -> bool | None:
    """Whether the module should balance now (None when a register it needs is missing).

    The balancer is switched on, the highest cell is at or above the balance turn-on voltage
    and the difference at or above the turn-on difference (manual, UART/RS485 model).
    """
    high, difference = status.max_cell_voltage, status.cell_delta  # both from the cell list
    start, delta = settings.balance_start_voltage, settings.balance_start_delta
    if status.balancer_enabled is None or high is None or difference is None or start is None or delta is None:
        return None
    # Millivolts, as the module compares them: no float residue at the limit.
    return (
        status.balancer_enabled
        and round(high * 1000) >= round(start * 1000)
        and round(difference * 1000) >= round(delta * 1000)
    )


@dataclass(slots=True, kw_only=True)
class _Debounced:
    raised: bool = False
    #: Polls in a row that pointed the other way.
    streak: int = 0
    #: When the current run of polls pointing the other way began (time-based conditions).
    since: float | None = None


class PackChecks:
    """The checks' memory between polls (a coordinator holds one) and the latest findings."""

    __slots__ = ("_conditions", "_failed_polls", "_resumed", "findings", "judged")

    def __init__(self, resumed: Iterable[str] = ()) -> None:
        """Start afresh, or resume the findings ``resumed`` (their keys) raised before a restart.

        A resumed finding has already waited its polls: "stopped answering" holds until an
        answer, and a measured one is raised at once by the first answered poll that shows it.
        """
        self._resumed = frozenset(resumed)
        stopped = Reason.STOPPED_ANSWERING in self._resumed
        self.findings = Findings(stopped_answering=stopped)
        #: Whether an answered poll was judged: until then the findings do not say that a
        #: measured condition is gone.
        self.judged = False
        self._conditions: dict[str, _Debounced] = {}
        self._failed_polls = RAISE_AFTER if stopped else 0

    def _state(self, key: str, *, bad: bool | None) -> _Debounced:
        """The memory of condition ``key``; a new one of a resumed finding starts raised if ``bad``."""
        if (state := self._conditions.get(key)) is None:
            resumed = key.split(":", 1)[0] in self._resumed
            state = self._conditions[key] = _Debounced(raised=bool(bad) and resumed)
        return state

    def _kept(self, key: str) -> bool:
        """Whether condition ``key`` is raised, leaving it as it is: nothing is known of it now.

        The polls counted towards raising or clearing it stay counted.
        """
        state = self._conditions.get(key)
        return state is not None and state.raised

    def _update(self, key: str, *, bad: bool, good: bool, hold: int = RAISE_AFTER) -> bool:
        """Whether condition ``key`` is raised after this poll.

        ``bad`` raises it after ``hold`` polls in a row; ``good`` (stricter than "not bad":
        the hysteresis) clears it after ``CLEAR_AFTER`` (``hold`` when shorter); a reading in
        between keeps it as it is.
        """
        state = self._state(key, bad=bad)
        turning = good if state.raised else bad
        state.streak = state.streak + 1 if turning else 0
        if state.streak >= (min(hold, CLEAR_AFTER) if state.raised else hold):
            state.raised = not state.raised
            state.streak = 0
        return state.raised

    def _update_for(self, key: str, *, bad: bool | None, now: float) -> bool:
        """Like ``_update``, but raised once ``bad`` held over ``DOUBT_AFTER`` seconds of polls.

        ``bad`` None (not known this poll) keeps the condition as it is.
        """
        state = self._state(key, bad=bad)
        if bad is None:
            return state.raised
        if state.raised:
            return self._update(key, bad=bad, good=not bad)
        if not bad:
            state.since = None
        elif state.since is None:
            state.since = now
        elif now - state.since >= DOUBT_AFTER:
            state.raised, state.since = True, None
        return state.raised

    def poll_failed(self) -> Findings:
        """The findings after a poll the module did not answer, or answered with nothing usable.

        Raised after ``RAISE_AFTER`` such polls in a row; the measured conditions are unknown
        while the module is silent and stay as they are.
        """
        self._failed_polls += 1
        if self._failed_polls >= RAISE_AFTER and not self.findings.stopped_answering:
            self.findings = replace(self.findings, stopped_answering=True)
        return self.findings

    def poll_answered(self, status: Status, settings: Settings, now: float) -> Findings:
        """The findings after a poll that read ``status`` and ``settings`` at ``now`` (monotonic s).

        An answer clears "stopped answering" at once: the module answers.
        """
        self._failed_polls = 0
        chemistry = chemistry_of(settings.battery_type)
        facts = CHEMISTRY[chemistry]
        low, high = facts.plausible_min, facts.plausible_max
        readings = {
            f"{Reason.CELL_OUT_OF_RANGE}:{chemistry}:{number}": (number, volts)
            for number, volts in enumerate(status.cell_voltages, start=1)
        }
        # A cell not reported now (fewer cells, another chemistry) is judged afresh when it is
        # again: its old readings say nothing about the cell wired there then.
        for key in [key for key in self._conditions if key.startswith(_CELL_KEY) and key not in readings]:
            del self._conditions[key]
        cells = tuple(
            number
            for key, (number, volts) in readings.items()
            if (
                # An unreadable (absent) reading says nothing about the cell, unlike a cell that
                # is no longer reported: its finding stays as it is.
                self._kept(key)
                if volts is None
                else self._update(
                    key,
                    bad=volts <= 0 or not low <= volts <= high,
                    good=volts > 0 and low + CELL_HYSTERESIS <= volts <= high - CELL_HYSTERESIS,
                )
            )
        )

        configured = settings.string_count
        mismatch = bool(configured is not None and status.cell_count and configured != status.cell_count)
        string_count = (
            (configured, status.cell_count)
            if configured is not None and self._update(Reason.STRING_COUNT, bad=mismatch, good=not mismatch)
            else None
        )

        pack = status.pack_voltage
        pack_low = pack is not None and self._update(
            Reason.PACK_VOLTAGE_LOW, bad=pack < MIN_PACK_VOLTAGE, good=pack >= MIN_PACK_VOLTAGE + PACK_HYSTERESIS
        )

        # A setting, not a measurement: raised and cleared on the first poll that shows it.
        start = settings.balance_start_voltage
        floor, ceiling = balance_voltage_range(settings.battery_type)
        outside = start is not None and not floor <= start <= ceiling
        balance_voltage = (
            OutOfRange(start, floor, ceiling)
            if start is not None and self._update(Reason.BALANCE_VOLTAGE, bad=outside, good=not outside, hold=1)
            else None
        )

        self.judged = True
        self._resumed = frozenset()
        self.findings = Findings(
            cells=cells,
            chemistry=chemistry,
            string_count=string_count,
            pack_voltage_low=pack_low,
            balance_voltage=balance_voltage,
            balancing_doubt=self._balancing_doubt(status, settings, now),
        )
        return self.findings

    def _balancing_doubt(self, status: Status, settings: Settings, now: float) -> tuple[str, ...]:
        """The registers whose balancing report contradicted the expectation for long enough."""
        expected = balancing_expected(status, settings)
        reports = {BALANCING_REGISTER: status.balancing}
        if status.balance_current is not None:
            reports[BALANCE_CURRENT_REGISTER] = abs(status.balance_current) >= BALANCE_CURRENT_ACTIVE
        return tuple(
            address
            for address, reported in reports.items()
            if self._update_for(
                f"{VERIFY_BALANCING}:{address}",
                bad=None if expected is None or reported is None else reported != expected,
                now=now,
            )
        )
