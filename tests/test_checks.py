"""The pack checks on their own: plain data in, findings out (no Home Assistant, no clock)."""

from __future__ import annotations

from dataclasses import replace

from aiodalybalancer.models import Settings, Status
from custom_components.daly_active_balance.checks import (
    BALANCE_CURRENT_REGISTER,
    BALANCING_REGISTER,
    CLEAR_AFTER,
    DOUBT_AFTER,
    RAISE_AFTER,
    Findings,
    PackChecks,
    Reason,
    balancing_expected,
)

SETTINGS = Settings(string_count=4, battery_type="lifepo4", balance_start_voltage=3.3, balance_start_delta=0.02)
#: Balancing expected: 3.40 V is above the turn-on voltage, 100 mV above the turn-on difference.
BALANCING = Status(
    cell_voltages=(3.40, 3.30, 3.35, 3.35),
    max_cell_voltage=3.40,
    cell_delta=0.10,
    cell_count=4,
    pack_voltage=13.4,
    balancer_enabled=True,
    balancing=True,
    balance_current=1.0,
)


def test_expectation_needs_every_register() -> None:
    """Without the switch, a turn-on setting or the cell list's extremes there is no expectation."""
    assert balancing_expected(BALANCING, SETTINGS) is True
    assert balancing_expected(replace(BALANCING, balancer_enabled=None), SETTINGS) is None
    assert balancing_expected(BALANCING, replace(SETTINGS, balance_start_delta=None)) is None
    assert balancing_expected(replace(BALANCING, max_cell_voltage=None, cell_delta=None), SETTINGS) is None
    assert balancing_expected(replace(BALANCING, balancer_enabled=False), SETTINGS) is False


def test_unknown_reports_neither_raise_nor_clear_the_doubt() -> None:
    """A poll without the balancing register, or without an expectation, leaves the doubt as it
    is; only polls that agree clear it."""
    checks = PackChecks()
    disagreeing = replace(BALANCING, balancing=False)
    checks.poll_answered(disagreeing, SETTINGS, 0.0)
    assert checks.poll_answered(disagreeing, SETTINGS, DOUBT_AFTER).balancing_doubt == (BALANCING_REGISTER,)

    unknown = replace(disagreeing, balancer_enabled=None)
    for step in range(RAISE_AFTER + 1):
        assert checks.poll_answered(unknown, SETTINGS, DOUBT_AFTER + step).balancing_doubt == (BALANCING_REGISTER,)
    for _ in range(CLEAR_AFTER - 1):
        assert checks.poll_answered(BALANCING, SETTINGS, 2 * DOUBT_AFTER).balancing_doubt == (BALANCING_REGISTER,)
    assert checks.poll_answered(BALANCING, SETTINGS, 2 * DOUBT_AFTER).balancing_doubt == ()


def test_balance_current_is_judged_by_its_size() -> None:
    """Either sign of the balance current reads as balancing (its sign is unknown); 0 A does not."""
    for current, doubt in ((-1.0, ()), (0.0, (BALANCE_CURRENT_REGISTER,))):
        status = replace(BALANCING, balance_current=current)
        checks = PackChecks()
        checks.poll_answered(status, SETTINGS, 0.0)
        assert checks.poll_answered(status, SETTINGS, DOUBT_AFTER).balancing_doubt == doubt


def test_silence_keeps_the_measured_findings() -> None:
    """While the module is silent the measured findings stay as they were, and it is reported
    as stopped answering after RAISE_AFTER unanswered polls; an answer clears that at once."""
    checks = PackChecks()
    low = replace(BALANCING, cell_voltages=(3.40, 0.0, 3.35, 3.35))
    for _ in range(RAISE_AFTER):
        checks.poll_answered(low, SETTINGS, 0.0)
    for _ in range(RAISE_AFTER - 1):
        assert checks.poll_failed().reasons == [Reason.CELL_OUT_OF_RANGE]
    findings = checks.poll_failed()
    assert findings.reasons == [Reason.CELL_OUT_OF_RANGE, Reason.STOPPED_ANSWERING]
    assert findings.cells == (2,)
    assert Reason.STOPPED_ANSWERING not in checks.poll_answered(low, SETTINGS, 0.0).reasons
    assert Findings().reasons == []


def _cells(*volts: float | None) -> Status:
    return Status(cell_voltages=volts, cell_count=len(volts), pack_voltage=round(sum(v or 0.0 for v in volts), 1))


def test_an_unreadable_cell_keeps_its_finding() -> None:
    """An unreadable (absent) reading says nothing about the cell: a raised finding stays raised,
    and a cell that reads 0 V between unreadable polls is raised (and cleared) after as many
    readings as ever, the unreadable polls counting neither way."""
    checks = PackChecks()
    settings = replace(SETTINGS, string_count=None)
    broken, unreadable, fine = _cells(3.3, 0.0, 3.3, 3.3), _cells(3.3, None, 3.3, 3.3), _cells(*(3.3,) * 4)
    for _ in range(RAISE_AFTER - 1):
        assert checks.poll_answered(broken, settings, 0.0).cells == ()
        assert checks.poll_answered(unreadable, settings, 0.0).cells == ()
    assert checks.poll_answered(broken, settings, 0.0).cells == (2,)
    for _ in range(RAISE_AFTER):
        assert checks.poll_answered(unreadable, settings, 0.0).cells == (2,)
    for _ in range(CLEAR_AFTER - 1):
        assert checks.poll_answered(fine, settings, 0.0).cells == (2,)
        assert checks.poll_answered(unreadable, settings, 0.0).cells == (2,)
    assert checks.poll_answered(fine, settings, 0.0).cells == ()


def test_a_cell_that_disappears_is_forgotten() -> None:
    """A cell the module no longer reports (fewer cells, or the count changed) leaves no memory
    behind: when it comes back, it is judged afresh from its new readings."""
    checks = PackChecks()
    settings = replace(SETTINGS, string_count=None)
    broken = (*(3.3,) * 11, 0.0, *(3.3,) * 4)
    for _ in range(RAISE_AFTER):
        findings = checks.poll_answered(_cells(*broken), settings, 0.0)
    assert findings.cells == (12,)

    assert checks.poll_answered(_cells(*(3.3,) * 8), settings, 0.0).cells == ()
    assert checks.poll_answered(_cells(*(3.3,) * 16), settings, 0.0).cells == ()
    # And a cell that breaks again after coming back takes RAISE_AFTER polls, as any other.
    for _ in range(RAISE_AFTER - 1):
        assert checks.poll_answered(_cells(*broken), settings, 0.0).cells == ()
    assert checks.poll_answered(_cells(*broken), settings, 0.0).cells == (12,)


def test_resumed_findings_are_raised_by_the_first_poll_that_shows_them() -> None:
    """After a restart the issues the registry holds are resumed: "stopped answering" holds until
    an answer, a measured finding is raised by the first poll that shows it (it already waited
    its polls), one that is gone clears; findings not resumed wait their polls as ever."""
    checks = PackChecks(resumed=(Reason.STOPPED_ANSWERING, Reason.CELL_OUT_OF_RANGE))
    assert checks.findings.stopped_answering
    assert not checks.judged
    assert checks.poll_failed().stopped_answering
    settings = replace(SETTINGS, string_count=3)
    findings = checks.poll_answered(_cells(3.3, 0.0, 3.3, 3.3), settings, 0.0)
    assert checks.judged
    assert (findings.stopped_answering, findings.cells, findings.string_count) == (False, (2,), None)
    # Only the first answered poll resumes: a cell that breaks later waits its polls.
    assert checks.poll_answered(_cells(0.0, 0.0, 3.3, 3.3), settings, 0.0).cells == (2,)
