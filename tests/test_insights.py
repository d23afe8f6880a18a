"""Pack insights: the daily summaries on their own, and 14 simulated days of a pack (no Home Assistant).

The simulated days feed the pack model's cells into the insights every 60 s of model time (the
integration polls every 10 s by default; a minute keeps 14 days at a few seconds and still puts
several polls into every knee crossing).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date, timedelta
import subprocess
import sys
from typing import Any

import pytest

from aiodalybalancer.models import Settings, Status
from aiodalybalancer.registers import BatteryType
from aiodalybalancer.tools.pack import DAY, PackModel, weak_cell_pack
from custom_components.daly_active_balance.checks import balancing_expected
from custom_components.daly_active_balance.insights import (
    FORMAT_VERSION,
    KEEP_DAYS,
    KNEES,
    Cause,
    DaySummary,
    Insights,
    Observation,
    migrate,
)
from reliability.pack_days import daily_table, live

LFP = BatteryType.LIFEPO4
DAY0 = date(2026, 3, 1)


def obs(
    cells: tuple[float | None, ...],
    *,
    t: float = 0.0,
    day: int = 0,
    chemistry: BatteryType = LFP,
    balancing: bool | None = False,
    expected: bool | None = False,
    enabled: bool | None = True,
    start_voltage: float | None = 3.3,
    start_delta: float | None = 0.02,
) -> Observation:
    return Observation(
        time=t,
        day=DAY0 + timedelta(days=day),
        cells=cells,
        chemistry=chemistry,
        balancing=balancing,
        expected=expected,
        balancer_enabled=enabled,
        start_voltage=start_voltage,
        start_delta=start_delta,
    )


def day_with_top(insights: Insights, day: int, top_mv: int, **kw: Any) -> None:
    """One day whose only top-of-charge reading has a difference of ``top_mv``."""
    insights.observe(obs((3.45, 3.45 - top_mv / 1000, 3.45), t=day * DAY, day=day, **kw))


# --- the daily figures, by hand -----------------------------------------------------------------


def test_top_and_bottom_difference_only_beyond_the_knees() -> None:
    """LiFePO4 knees 3.40/3.20 V: a 40 mV difference in the middle counts nowhere."""
    insights = Insights()
    insights.observe(obs((3.34, 3.30, 3.32)))  # the flat middle: neither knee
    assert insights.answers().top_difference_today is None
    assert insights.answers().bottom_difference_today is None
    insights.observe(obs((3.40, 3.30, 3.35), t=10))  # at the knee is not above it
    assert insights.answers().top_difference_today is None
    insights.observe(obs((3.401, 3.381, 3.39), t=20))  # 3401 − 3381 = 20 mV
    insights.observe(obs((3.50, 3.42, 3.45), t=30))  # 3500 − 3420 = 80 mV
    insights.observe(obs((3.55, 3.50, 3.52), t=40))  # 50 mV: the day keeps its largest
    insights.observe(obs((3.25, 3.199, 3.22), t=50))  # lowest 3199 < 3200: 51 mV at the bottom
    answers = insights.answers()
    assert answers.top_difference_today == 80
    assert answers.bottom_difference_today == 51
    assert answers.highest_at_top == (3, 0, 0)  # cell 1 highest in three top polls
    assert answers.lowest_at_bottom == (0, 1, 0)
    assert (answers.highest_cell_at_top, answers.weakest_cell) == (1, 2)


def test_absent_cells_are_left_out_and_a_pack_of_none_counts_nothing() -> None:
    insights = Insights()
    insights.observe(obs((None, None)))
    insights.observe(obs((3.5, None, 3.45), t=10))
    answers = insights.answers()
    assert answers.top_difference_today == 50
    assert answers.highest_at_top == (1, 0, 0)


def test_a_day_without_a_knee_is_unknown_not_zero() -> None:
    insights = Insights()
    for day in range(5):
        insights.observe(obs((3.30, 3.31, 3.29), t=day * DAY, day=day))
    closed = insights.days[:-1]
    assert [d.top_difference for d in closed] == [None] * 4
    assert [d.bottom_difference for d in closed] == [None] * 4
    answers = insights.answers()
    assert answers.trend is None
    assert answers.top_difference_yesterday is None
    assert answers.weakest_cell is None
    assert answers.highest_cell_at_top is None
    assert answers.not_keeping_up is None


def test_balancing_time_integrates_between_polls_up_to_the_gap() -> None:
    """The state seen at a poll holds until the next; a gap beyond ``max_gap`` counts nothing."""
    insights = Insights(max_gap=60)
    cells = (3.3, 3.3)
    insights.observe(obs(cells, t=0, balancing=True, expected=True))
    insights.observe(obs(cells, t=10, balancing=True, expected=False))  # +10 s both
    insights.observe(obs(cells, t=40, balancing=False, expected=False))  # +30 s reported
    insights.observe(obs(cells, t=100, balancing=True, expected=True))  # 60 s of nothing
    insights.observe(obs(cells, t=161, balancing=False, expected=None))  # 61 s: an outage
    insights.observe(obs(cells, t=171, balancing=None, expected=None))  # previous False: nothing
    answers = insights.answers()
    assert answers.balancing_today_s == 40
    assert answers.expected_today_s == 10


def test_yesterday_and_the_trend_by_least_squares() -> None:
    """Days 0–3 at 10, 14, 15, 21 mV: slope = Σ(x−x̄)(y−ȳ)/Σ(x−x̄)² = (−1.5·−5 −.5·−1 + .5·0 + 1.5·6)/5 = 3.4."""
    insights = Insights()
    for day, top in enumerate((10, 14)):
        day_with_top(insights, day, top)
    insights.observe(obs((3.3, 3.3, 3.3), t=2 * DAY, day=2))
    assert insights.answers().trend is None  # two finished days with a top: unknown
    assert insights.answers().top_difference_yesterday == 14
    insights = Insights()
    for day, top in enumerate((10, 14, 15, 21)):
        day_with_top(insights, day, top)
    insights.observe(obs((3.3, 3.3, 3.3), t=4 * DAY, day=4))
    answers = insights.answers()
    assert answers.trend == pytest.approx(3.4)
    assert answers.top_difference_yesterday == 21
    assert answers.top_difference_today is None


def test_the_trend_uses_the_last_seven_days_with_a_top_and_their_dates() -> None:
    """Tops on days 0–8 and 11: the last seven are days 3–8 (13…18 mV) and 11 (30 mV).

    x̄ = 44/7, ȳ = 123/7; Σ(x−x̄)(y−ȳ) = Σxy − 7x̄ȳ = (39+56+75+96+119+144+330) − 44·123/7 = 601/7;
    Σ(x−x̄)² = Σx² − 7x̄² = 420 − 1936/7 = 304/7; slope = 601/304.
    """
    insights = Insights()
    for day in range(9):
        day_with_top(insights, day, 100 if day < 3 else 10 + day)
    day_with_top(insights, 11, 30)  # days 9 and 10 have no data at all
    insights.observe(obs((3.3, 3.3, 3.3), t=12 * DAY, day=12))
    assert insights.answers().trend == pytest.approx(601 / 304)
    assert insights.answers().top_difference_yesterday == 30


def test_not_keeping_up_needs_the_trend_rising_on_several_days_and_names_causes() -> None:
    """Rising 5 mV/day with the top below the 20 mV turn-on difference and the same cell lowest."""
    insights = Insights(rising_mv_per_day=2.0, rising_days=3)
    for day in range(5):
        insights.observe(obs((3.45, 3.45 - (2 + 4 * day) / 1000, 3.45), t=day * DAY, day=day))
        insights.observe(obs((3.25, 3.25, 3.1), t=day * DAY + 60, day=day))  # cell 3 lowest at the bottom
        # Days 0–3 closed: trends over (0,1,2)=4, (0..3)=4 only two values → not yet.
        assert insights.answers().not_keeping_up is None
    insights.observe(obs((3.3, 3.3, 3.3), t=5 * DAY, day=5))
    verdict = insights.answers().not_keeping_up
    assert verdict is not None
    assert verdict.trend == 4.0
    assert verdict.causes == (Cause.TURN_ON_DIFFERENCE, Cause.CELL_CAPACITY)
    assert verdict.cell == 3
    # A day whose top falls back to 0: tops 2, 6, 10, 14, 18 (days 0–4) and 0 (day 6) have a
    # slope of (Σxy − ΣxΣy/n)/(Σx² − (Σx)²/n) = (140 − 16·50/6)/(66 − 16²/6) = 2/7 mV/day: below
    # the 2 mV/day that raise it, but still rising, so it stays (hysteresis).
    day_with_top(insights, 6, 0)
    insights.observe(obs((3.3, 3.3, 3.3), t=7 * DAY, day=7))
    verdict = insights.answers().not_keeping_up
    assert verdict is not None
    assert verdict.trend == 0.29
    # Another: (140 − 23·50/7)/(115 − 23²/7) = −0.62 mV/day, no longer rising: cleared.
    day_with_top(insights, 7, 0)
    insights.observe(obs((3.3, 3.3, 3.3), t=8 * DAY, day=8))
    assert insights.answers().trend == pytest.approx((140 - 23 * 50 / 7) / (115 - 23**2 / 7))
    assert insights.answers().not_keeping_up is None


def test_no_capacity_cause_when_the_lowest_cell_changes_and_settings_may_be_unknown() -> None:
    """Rising 10 mV/day, a different cell lowest at the bottom each day, turn-on settings unread."""
    insights = Insights()
    for day in range(5):
        cells = [3.25, 3.25, 3.25]
        cells[day % 3] = 3.1
        unknown = {"start_voltage": None, "start_delta": None, "enabled": None}
        day_with_top(insights, day, 10 * day, **unknown)
        insights.observe(obs(tuple(cells), t=day * DAY + 60, day=day, **unknown))
    insights.observe(obs((3.3, 3.3, 3.3), t=5 * DAY, day=5))
    verdict = insights.answers().not_keeping_up
    assert verdict is not None
    assert (verdict.causes, verdict.cell) == ((), None)
    assert insights.days[0].start_voltage is None
    assert insights.chemistry is LFP


def test_nothing_observed_yet() -> None:
    insights = Insights()
    assert insights.chemistry is None
    assert insights.days == ()
    assert insights.answers().balancing_today_s == 0.0
    assert insights.answers().not_keeping_up is None


def test_from_poll_takes_the_expectation_from_the_checks() -> None:
    status = Status(
        cell_voltages=(3.45, 3.40, 3.42),
        max_cell_voltage=3.45,
        cell_delta=0.05,
        balancer_enabled=True,
        balancing=False,
    )
    settings = Settings(battery_type="li_ion", balance_start_voltage=3.3, balance_start_delta=0.02)
    observation = Observation.from_poll(5.0, DAY0, status, settings)
    assert observation.expected is balancing_expected(status, settings) is True
    assert observation.chemistry is BatteryType.LI_ION
    assert (observation.balancing, observation.start_voltage, observation.start_delta) == (False, 3.3, 0.02)


def test_chemistry_change_starts_the_knees_afresh() -> None:
    """Today's LiFePO4 figures are dropped (the balancing time stays); older days leave the answers."""
    insights = Insights()
    for day in range(4):
        day_with_top(insights, day, 10 + 5 * day)
        insights.observe(obs((3.45, 3.44, 3.45), t=day * DAY + 10, day=day, balancing=True))
    insights.observe(obs((3.25, 3.19, 3.25), t=4 * DAY, day=4, balancing=True))  # bottom, cell 2
    insights.observe(obs((3.45, 3.40, 3.45), t=4 * DAY + 10, day=4))  # top 50 mV
    before = insights.answers()
    assert before.trend == pytest.approx(5.0)
    assert before.top_difference_today == 50
    assert before.balancing_today_s == 10

    li_ion = obs((3.45, 3.40, 3.45), t=4 * DAY + 20, day=4, chemistry=BatteryType.LI_ION)
    insights.observe(li_ion)  # the same cells are the middle of a Li-ion curve
    after = insights.answers()
    assert after.top_difference_today is None
    assert after.bottom_difference_today is None
    assert after.lowest_at_bottom == ()
    assert after.trend is None
    assert after.top_difference_yesterday is None
    assert after.balancing_today_s == 10
    assert insights.days[-1].chemistry is BatteryType.LI_ION
    assert [d.chemistry for d in insights.days[:-1]] == [LFP] * 4  # kept for what they were
    insights.observe(replace(li_ion, cells=(4.15, 4.12, 4.15), time=4 * DAY + 30))  # above 4.10 V
    assert insights.answers().top_difference_today == 30


def sixteen_cell_days(insights: Insights, days: int) -> tuple[float, ...]:
    """``days`` days of a 16-cell pack: cell 14 highest at the top (10 mV more a day), cell 12
    lowest at the bottom. Returns the cells of a top reading."""
    top = [3.45] * 16
    for day in range(days):
        top[13] = 3.46 + 0.01 * day
        bottom = [3.25] * 16
        bottom[11] = 3.10
        insights.observe(obs(tuple(top), t=day * DAY, day=day))
        insights.observe(obs(tuple(bottom), t=day * DAY + 10, day=day))
    return tuple(top)


def _no_cell_beyond(answers: Any, cells: int) -> bool:
    named = [answers.weakest_cell, answers.highest_cell_at_top]
    if answers.not_keeping_up is not None:
        named.append(answers.not_keeping_up.cell)
    return (
        all(cell is None or cell <= cells for cell in named)
        and max(len(answers.lowest_at_bottom), len(answers.highest_at_top)) <= cells
    )


def test_a_cell_count_change_starts_afresh_and_names_no_missing_cell() -> None:
    """Read as 8 cells, a 16-cell pack's days (cell 12 weakest, cell 14 highest) leave the
    answers; the days stay stored, and count again once the 16 cells are back."""
    insights = Insights(rising_mv_per_day=5, rising_days=2)
    top = sixteen_cell_days(insights, 5)
    before = insights.answers()
    assert (before.weakest_cell, before.highest_cell_at_top) == (12, 14)
    assert before.trend == pytest.approx(10.0)
    assert before.top_difference_yesterday == 40
    assert before.top_difference_today == 50
    assert before.not_keeping_up is not None
    assert before.not_keeping_up.cell == 12

    eight = obs((3.45,) * 7 + (3.50,), t=4 * DAY + 20, day=4)
    insights.observe(eight)
    after = insights.answers()
    assert (after.weakest_cell, after.trend, after.not_keeping_up) == (None, None, None)
    assert after.highest_cell_at_top == 8  # the 8 cells' own top
    assert (after.top_difference_yesterday, after.top_difference_today) == (None, 50)  # the 8 cells' own top
    assert after.highest_at_top == (0,) * 7 + (1,)
    assert len(insights.days) == 5

    stored = Insights.from_dict(insights.as_dict())  # a restart keeps reading 8 cells
    stored.observe(replace(eight, time=4 * DAY + 30))
    assert _no_cell_beyond(stored.answers(), 8)
    assert stored.answers().highest_cell_at_top == 8

    insights.observe(obs(top, t=4 * DAY + 40, day=4))  # the 16 cells are back: their days count again
    back = insights.answers()
    assert (back.weakest_cell, back.trend) == (12, pytest.approx(10.0))
    assert back.highest_at_top[13] == 5  # days 0–3 and the poll just now
    assert len(back.highest_at_top) == 16


def test_a_restart_then_fewer_cells_names_no_missing_cell() -> None:
    """Loaded from a 16-cell store, the first poll of 8 cells already answers for those 8."""
    insights = Insights(rising_mv_per_day=5, rising_days=2)
    sixteen_cell_days(insights, 5)
    restored = Insights.from_dict(insights.as_dict(), rising_mv_per_day=5, rising_days=2)
    assert restored.answers().weakest_cell == 12
    restored.observe(obs((3.45,) * 7 + (3.50,), t=4 * DAY + 20, day=4))
    assert _no_cell_beyond(restored.answers(), 8)
    assert restored.answers().not_keeping_up is None


def test_an_implausible_reading_is_left_out() -> None:
    """A cell at 0 V (a wiring fault the pack check reports) or far above the range is no
    difference of the pack: the day's figures are the other cells'."""
    insights = Insights()
    insights.observe(obs((3.45, 3.44, 3.45, 0.0)))
    insights.observe(obs((3.45, 3.43, 3.45, 5.0), t=10))
    insights.observe(obs((3.15, 3.10, 3.15, 0.0), t=20))
    answers = insights.answers()
    assert (answers.top_difference_today, answers.bottom_difference_today) == (20, 50)
    assert answers.weakest_cell == 2
    assert answers.highest_at_top == (2, 0, 0, 0)
    # The edges of the range count (LiFePO4 2.0 to 3.8 V): the readings are of the pack.
    insights.observe(obs((3.8, 3.5, 3.5, 3.5), t=30))
    assert insights.answers().top_difference_today == 300


def test_history_keeps_thirty_days() -> None:
    insights = Insights()
    for day in range(40):
        day_with_top(insights, day, 10)
    assert len(insights.days) == KEEP_DAYS
    assert insights.days[0].day == DAY0 + timedelta(days=10)


def test_a_date_going_back_stays_filed_under_today() -> None:
    insights = Insights()
    day_with_top(insights, 3, 10)
    insights.observe(obs((3.45, 3.40), t=10, day=2))
    assert [d.day for d in insights.days] == [DAY0 + timedelta(days=3)]
    assert insights.answers().top_difference_today == 50


# --- storage ------------------------------------------------------------------------------------


def test_round_trip_through_a_plain_dict() -> None:
    insights = Insights()
    for day in range(6):
        day_with_top(insights, day, 3 + 4 * day, enabled=day != 2)
        insights.observe(obs((3.25, 3.1, 3.25), t=day * DAY + 30, day=day, balancing=True, expected=True))
    stored = insights.as_dict()
    assert stored["version"] == FORMAT_VERSION
    restored = Insights.from_dict(stored)
    assert restored.days == insights.days
    assert restored.answers() == insights.answers()
    assert restored.answers().not_keeping_up is not None
    assert restored.as_dict() == stored


def test_a_version_1_store_is_migrated() -> None:
    """Version 1 held millivolt figures in volts."""
    v1 = {
        "version": 1,
        "days": [
            {
                "day": "2026-03-01",
                "chemistry": "lifepo4",
                "top_difference": 0.021,
                "bottom_difference": None,
                "highest_at_top": [2, 0],
                "lowest_at_bottom": [],
                "balancing_s": 60.0,
                "expected_s": 30.0,
                "max_cell": 3.55,
                "start_voltage": 3.3,
                "start_delta": 0.02,
                "switched_off": False,
            }
        ],
    }
    assert migrate(v1)["version"] == FORMAT_VERSION
    restored = Insights.from_dict(v1)
    today = restored.days[-1]
    assert today == DaySummary(
        day=DAY0,
        chemistry=LFP,
        top_difference=21,
        highest_at_top=(2, 0),
        balancing_s=60.0,
        expected_s=30.0,
        max_cell=3550,
        start_voltage=3300,
        start_delta=20,
    )
    assert restored.answers().highest_cell_at_top == 1


def test_a_newer_store_is_read_as_far_as_it_can_be() -> None:
    """A later release's layout (a downgrade since): its days are kept, fields it added ignored."""
    insights = Insights()
    sixteen_cell_days(insights, 4)
    newer = insights.as_dict()
    newer["version"] = FORMAT_VERSION + 1
    for day in newer["days"]:
        day["added_later"] = [1, 2, 3]
    restored = Insights.from_dict(newer)
    assert restored.days == insights.days
    assert restored.answers() == insights.answers()


@pytest.mark.parametrize(
    "stored",
    [None, {}, {"version": FORMAT_VERSION + 1, "days": []}, {"version": FORMAT_VERSION, "days": [{"day": "x"}]}],
)
def test_an_unreadable_store_starts_fresh(stored: dict[str, Any] | None) -> None:
    insights = Insights.from_dict(stored, rising_days=4)
    assert insights.days == ()
    assert insights.rising_days == 4
    assert insights.answers().trend is None


def test_knees_are_inside_each_chemistry() -> None:
    for knees in KNEES.values():
        assert knees.lower < knees.upper


# --- 14 simulated days --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settled() -> PackModel:
    """A pack with a weak cell (5) after five days with the balancer on (its top has converged)."""
    return weak_cell_pack(days_in=5)


def run(pack: PackModel, insights: Insights, days: int) -> list[DaySummary]:
    """Run ``days``; the finished days' summaries."""
    for _ in live(pack, insights, days):
        pass
    return list(insights.days[-days - 1 : -1])


def test_balancer_on_finds_the_weak_cell_and_the_top_converges() -> None:
    pack = weak_cell_pack()
    insights = Insights()
    run(pack, insights, 7)
    trend = insights.answers().trend
    assert trend is not None
    assert trend < 0  # the week it converges
    run(pack, insights, 7)
    days = insights.days[:-1]
    assert len(days) == 14
    tops = [day.top_difference for day in days]
    assert None not in tops
    assert tops[-1] < tops[0] / 2
    assert all(day.weakest_cell == 5 for day in days)
    assert all(day.balancing_s > 0 and day.expected_s == day.balancing_s for day in days)
    answers = insights.answers()
    assert answers.weakest_cell == 5
    assert answers.lowest_at_bottom[4] == max(answers.lowest_at_bottom)
    assert answers.highest_cell_at_top is not None
    assert answers.not_keeping_up is None


def test_balancer_off_raises_not_keeping_up_and_on_again_clears_it(settled: PackModel) -> None:
    pack = copy.deepcopy(settled)
    pack.settings = replace(pack.settings, enabled=False)
    insights = Insights()
    days = run(pack, insights, 5)
    assert all(day.balancing_s == 0 and day.switched_off for day in days)
    answers = insights.answers()
    assert answers.trend is not None
    assert answers.trend > 2
    verdict = answers.not_keeping_up
    assert verdict is not None
    assert Cause.BALANCER_OFF in verdict.causes
    assert Cause.TURN_ON_VOLTAGE not in verdict.causes
    assert verdict.cell == 5
    # A week on, the top difference has run into the charge cut-off and barely grows: still raised.
    run(pack, insights, 7)
    answers = insights.answers()
    assert answers.trend is not None
    assert 0 < answers.trend < 2
    assert answers.not_keeping_up is not None
    assert Insights.from_dict(insights.as_dict()).answers() == answers

    pack.settings = replace(pack.settings, enabled=True)
    cleared = None
    for day in range(1, 8):
        run(pack, insights, 1)
        if insights.answers().not_keeping_up is None:
            cleared = day
            break
    assert cleared is not None, insights.answers()


def test_turn_on_voltage_above_the_top_raises_not_keeping_up(settled: PackModel) -> None:
    pack = copy.deepcopy(settled)
    pack.settings = replace(pack.settings, start_voltage=3.6)  # the charger stops cells at 3.55 V
    insights = Insights()
    days = run(pack, insights, 7)
    assert all(day.balancing_s == 0 and day.max_cell is not None and day.max_cell < 3600 for day in days)
    verdict = insights.answers().not_keeping_up
    assert verdict is not None
    assert insights.answers().trend is not None
    assert insights.answers().trend > 0
    assert Cause.TURN_ON_VOLTAGE in verdict.causes
    assert Cause.BALANCER_OFF not in verdict.causes


def test_a_pack_that_never_reaches_a_knee_shows_unknown() -> None:
    """Too little sun and load to leave the LiFePO4 plateau: no top, no bottom, no trend."""
    pack = weak_cell_pack(spread=0.0)
    pack.charge = [cap * 0.5 for cap in pack.capacities]
    pack.nominal = 5.0  # a 5 Ah pack's currents through 100 Ah cells
    insights = Insights()
    days = run(pack, insights, 5)
    assert [(day.top_difference, day.bottom_difference) for day in days] == [(None, None)] * 5
    answers = insights.answers()
    assert (answers.trend, answers.weakest_cell, answers.not_keeping_up) == (None, None, None)


def test_the_daily_table_prints_both_runs() -> None:
    table = daily_table(3)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["day", "top", "mV"]
    assert len(lines) == 4


def test_the_command_line_prints_both_tables() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reliability.pack_days", "--days", "2", "--settle", "0"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "Balancer on:"
    assert lines[1].split()[:3] == ["day", "top", "mV"]
    assert [line.split()[0] for line in lines[2:4]] == ["1", "2"]
    assert "Balancer off:" in lines
