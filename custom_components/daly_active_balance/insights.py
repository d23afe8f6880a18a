"""Pack insights: is the balancer keeping up, and which cell is weak (no Home Assistant).

On LiFePO4 the momentary cell difference says little: in the flat middle of the curve a badly
unbalanced pack reads a few millivolts. Imbalance shows at the top of charge, lost capacity at
the bottom, and a pack over days shows a trend. So this keeps, per local day:

* the **top-of-charge difference**: the largest cell difference seen while the highest cell was
  above the chemistry's upper knee, and the **bottom difference**: the same while the lowest cell
  was below the lower knee (None on a day that never got there: unknown, never 0);
* how long the module **reported balancing**, and how long the manual's rule **expected** it
  (``checks.balancing_expected``), integrating the time between observations up to ``max_gap``;
* per cell, how often it was the **highest at the top** and the **lowest at the bottom** (polls);
* the highest cell of the day and the turn-on settings, to say why the balancer falls behind.

From the days it answers: the top difference yesterday and today so far, the **trend** of the top
difference (least squares over the last 7 finished days with a top, mV/day), the **weakest cell**,
the **cell highest at the top**, and whether the balancer is **not keeping up**, with what to check.

A change of chemistry starts the knees afresh: today's knee figures under the old chemistry are
dropped (its balancing times stay: they do not depend on the knees), and the answers use only days
of the current chemistry; older days stay stored for what they were. A change of the cell count
(another pack, or the module set to another string count) does the same: a cell the module no
longer reports is never named. A reading outside the chemistry's plausible range (0 V: a wiring
or sampling fault, which the pack check reports) is left out, as an unreadable one is.

Each observation costs O(cells); the day's figures are folded into the history once, when the
first observation of a new day arrives. The state goes to and from a plain dict with a format
version (Home Assistant's ``Store``), keeping the last ``KEEP_DAYS`` days.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, Final

from aiodalybalancer.models import Settings, Status
from aiodalybalancer.registers import CHEMISTRY, BatteryType, chemistry_of

from .checks import balancing_expected

#: The stored layout (``as_dict``); ``from_dict`` migrates older ones up to it.
FORMAT_VERSION: Final = 2
#: Days kept in the stored history (today included).
KEEP_DAYS: Final = 30
#: Finished days with a top-of-charge difference the trend is fitted over, and the fewest it needs.
TREND_DAYS: Final = 7
TREND_MIN_DAYS: Final = 3
#: Longest time between two observations that still counts as balancing time (s): a longer gap
#: is an outage, not time the module was seen balancing. The wiring should pass at least twice the
#: update interval.
DEFAULT_MAX_GAP: Final = 300.0
#: "Not keeping up": raised by a trend at or above this (mV/day) on each of the last
#: ``DEFAULT_RISING_DAYS`` finished days with a top-of-charge difference; cleared once the trend
#: no longer rises (at or below 0).
DEFAULT_RISING_MV_PER_DAY: Final = 2.0
DEFAULT_RISING_DAYS: Final = 3


@dataclass(frozen=True, slots=True)
class Knees:
    """Where a chemistry's voltage curve leaves its middle (volts, per cell)."""

    upper: float
    lower: float


#: The manual names no knees; these come from public open-circuit-voltage curves.
KNEES: Final[Mapping[BatteryType, Knees]] = {
    # Lithium Werks APR18650M1B OCV table in github.com/soorajsunil/Piecewise-Battery-OCV (README):
    # the plateau ends at 3.351 V (98.3 % SOC), 3.418 V at 99.5 %; it starts at 3.194 V (8.9 %),
    # 3.087 V at 5.3 %. Upper knee above the plateau's end so charge current in the middle does
    # not count as top.
    BatteryType.LIFEPO4: Knees(upper=3.40, lower=3.20),
    # Samsung INR21700-40T and Molicel INR21700-P42A OCV tables in the same README: 4.10–4.11 V at
    # 95 % SOC (4.07 V at 84 %), 3.42 V at 14–15 % falling to 3.32 V at 9 %.
    BatteryType.LI_ION: Knees(upper=4.10, lower=3.40),
    # [INF] No public LTO curve with breakpoints was found. The manual's LTO range is 1.8–2.8 V and
    # the nominal voltage 2.3–2.4 V (en.wikipedia.org/wiki/Lithium-titanate_battery; Toshiba SCiB:
    # 2.3 V average); the knees sit 0.2 V inside the range's ends.
    BatteryType.LTO: Knees(upper=2.60, lower=2.00),
}


#: Per chemistry, the cell readings (mV) the insights take: the pack check's plausible range.
_PLAUSIBLE_MV: Final[Mapping[BatteryType, tuple[int, int]]] = {
    chemistry: (round(facts.plausible_min * 1000), round(facts.plausible_max * 1000))
    for chemistry, facts in CHEMISTRY.items()
}


class Cause(StrEnum):
    """What to check when the balancer does not keep up (also a translation key)."""

    BALANCER_OFF = "balancer_off"
    TURN_ON_VOLTAGE = "turn_on_voltage_above_top"
    TURN_ON_DIFFERENCE = "turn_on_difference_too_high"
    CELL_CAPACITY = "cell_losing_capacity"


@dataclass(frozen=True, slots=True)
class Observation:
    """One poll as the insights need it (volts; ``time`` in seconds, only differences matter)."""

    time: float
    #: The local date the caller files this poll under.
    day: date
    cells: tuple[float | None, ...]
    chemistry: BatteryType
    #: What the module reported (register 0x0034), None when unknown.
    balancing: bool | None
    #: What the manual's rule predicts (``checks.balancing_expected``), None when unknown.
    expected: bool | None
    balancer_enabled: bool | None = None
    start_voltage: float | None = None
    start_delta: float | None = None

    @classmethod
    def from_poll(cls, time: float, day: date, status: Status, settings: Settings) -> Observation:
        """The observation of one answered poll."""
        return cls(
            time=time,
            day=day,
            cells=status.cell_voltages,
            chemistry=chemistry_of(settings.battery_type),
            balancing=status.balancing,
            expected=balancing_expected(status, settings),
            balancer_enabled=status.balancer_enabled,
            start_voltage=settings.balance_start_voltage,
            start_delta=settings.balance_start_delta,
        )


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One day's figures (millivolts; counts are polls; cell *i* is index *i − 1*)."""

    day: date
    chemistry: BatteryType
    top_difference: int | None = None
    bottom_difference: int | None = None
    highest_at_top: tuple[int, ...] = ()
    lowest_at_bottom: tuple[int, ...] = ()
    balancing_s: float = 0.0
    expected_s: float = 0.0
    #: The highest cell voltage of the day (mV).
    max_cell: int | None = None
    #: The turn-on voltage and difference last seen that day (mV).
    start_voltage: int | None = None
    start_delta: int | None = None
    #: The balancer switch read off at some poll of the day.
    switched_off: bool = False

    @property
    def weakest_cell(self) -> int | None:
        """The cell (1-based) most often lowest at the bottom this day."""
        return _most_often(self.lowest_at_bottom)

    def as_dict(self) -> dict[str, Any]:
        """The day as plain JSON-able data."""
        return {
            "day": self.day.isoformat(),
            "chemistry": str(self.chemistry),
            "top_difference": self.top_difference,
            "bottom_difference": self.bottom_difference,
            "highest_at_top": list(self.highest_at_top),
            "lowest_at_bottom": list(self.lowest_at_bottom),
            "balancing_s": round(self.balancing_s, 1),
            "expected_s": round(self.expected_s, 1),
            "max_cell": self.max_cell,
            "start_voltage": self.start_voltage,
            "start_delta": self.start_delta,
            "switched_off": self.switched_off,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DaySummary:
        """A day from ``as_dict`` (current format)."""
        return cls(
            day=date.fromisoformat(data["day"]),
            chemistry=BatteryType(data["chemistry"]),
            top_difference=_opt_int(data.get("top_difference")),
            bottom_difference=_opt_int(data.get("bottom_difference")),
            highest_at_top=tuple(int(n) for n in data.get("highest_at_top", ())),
            lowest_at_bottom=tuple(int(n) for n in data.get("lowest_at_bottom", ())),
            balancing_s=float(data.get("balancing_s", 0.0)),
            expected_s=float(data.get("expected_s", 0.0)),
            max_cell=_opt_int(data.get("max_cell")),
            start_voltage=_opt_int(data.get("start_voltage")),
            start_delta=_opt_int(data.get("start_delta")),
            switched_off=bool(data.get("switched_off", False)),
        )


@dataclass(frozen=True, slots=True)
class NotKeepingUp:
    """The balancer falls behind: the trend rose on the last days, and what to check."""

    trend: float
    days: int
    causes: tuple[Cause, ...]
    #: The cell lowest at the bottom on those days (with ``Cause.CELL_CAPACITY``).
    cell: int | None = None


@dataclass(frozen=True, slots=True)
class Answers:
    """What the insights say now (millivolts, seconds; cells 1-based)."""

    top_difference_today: int | None
    top_difference_yesterday: int | None
    bottom_difference_today: int | None
    trend: float | None
    balancing_today_s: float
    expected_today_s: float
    weakest_cell: int | None
    lowest_at_bottom: tuple[int, ...]
    highest_cell_at_top: int | None
    highest_at_top: tuple[int, ...]
    not_keeping_up: NotKeepingUp | None


def _fields(day: DaySummary | _Today) -> dict[str, Any]:
    """A day's fields by name, shallow (the summary and today's figures have the same fields)."""
    return {name.name: getattr(day, name.name) for name in fields(day)}


@dataclass(slots=True)
class _Today:
    """Today's figures while they change (mutable: one update per poll, no copies)."""

    day: date
    chemistry: BatteryType
    top_difference: int | None = None
    bottom_difference: int | None = None
    highest_at_top: list[int] = field(default_factory=list)
    lowest_at_bottom: list[int] = field(default_factory=list)
    balancing_s: float = 0.0
    expected_s: float = 0.0
    max_cell: int | None = None
    start_voltage: int | None = None
    start_delta: int | None = None
    switched_off: bool = False

    @classmethod
    def of(cls, summary: DaySummary) -> _Today:
        counts = {"highest_at_top": list(summary.highest_at_top), "lowest_at_bottom": list(summary.lowest_at_bottom)}
        return cls(**{**_fields(summary), **counts})

    def summary(self) -> DaySummary:
        counts = {"highest_at_top": tuple(self.highest_at_top), "lowest_at_bottom": tuple(self.lowest_at_bottom)}
        return DaySummary(**{**_fields(self), **counts})

    def restart_knees(self, chemistry: BatteryType) -> None:
        """Drop the figures that depend on the chemistry's knees."""
        self.chemistry = chemistry
        self.top_difference = self.bottom_difference = self.max_cell = None
        self.highest_at_top = []
        self.lowest_at_bottom = []


class Insights:
    """The daily summaries and the answers drawn from them (a coordinator holds one)."""

    __slots__ = (
        "_cells",
        "_days",
        "_last",
        "_recent",
        "_today",
        "_trend",
        "_verdict",
        "_yesterday",
        "max_gap",
        "rising_days",
        "rising_mv_per_day",
    )

    def __init__(
        self,
        *,
        max_gap: float = DEFAULT_MAX_GAP,
        rising_mv_per_day: float = DEFAULT_RISING_MV_PER_DAY,
        rising_days: int = DEFAULT_RISING_DAYS,
    ) -> None:
        """Start with no history; the thresholds are meant to become options."""
        self.max_gap = max_gap
        self.rising_mv_per_day = rising_mv_per_day
        self.rising_days = rising_days
        #: Finished days, oldest first.
        self._days: list[DaySummary] = []
        self._today: _Today | None = None
        #: The cell count of the pack the answers are about (the latest observation's; after
        #: loading, the newest day's with per-cell counts), None before any.
        self._cells: int | None = None
        #: The previous observation's time and states (not stored: after a restart the gap is long).
        self._last: tuple[float, bool, bool] | None = None
        self._verdict: NotKeepingUp | None = None
        self._trend: float | None = None
        self._yesterday: int | None = None
        #: Per-cell counts (lowest at the bottom, highest at the top) of the recent finished days.
        self._recent: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())

    def configure(
        self,
        *,
        max_gap: float | None = None,
        rising_mv_per_day: float | None = None,
        rising_days: int | None = None,
    ) -> None:
        """Change the options; a changed threshold judges "not keeping up" again over the kept days."""
        if max_gap is not None:
            self.max_gap = max_gap
        rejudge = False
        if rising_mv_per_day is not None and rising_mv_per_day != self.rising_mv_per_day:
            self.rising_mv_per_day, rejudge = rising_mv_per_day, True
        if rising_days is not None and rising_days != self.rising_days:
            self.rising_days, rejudge = rising_days, True
        if rejudge and self._today is not None:
            self._refresh(replay=True)

    # --- per poll ---------------------------------------------------------------------------

    def observe(self, obs: Observation) -> None:
        """Fold one poll into today's figures (O(cells); a new day first closes the previous one)."""
        other_pack = self._cells is not None and len(obs.cells) != self._cells
        self._cells = len(obs.cells)
        today = self._today
        if today is None or obs.day > today.day:
            if today is not None:
                self._close_day(today.summary(), obs.day)
            changed = today is not None and (today.chemistry != obs.chemistry or other_pack)
            today = self._today = _Today(obs.day, obs.chemistry)
            self._refresh(replay=changed)
        # A date going back (the clock or the time zone changed) stays filed under today.
        elif obs.chemistry != today.chemistry or other_pack:
            today.restart_knees(obs.chemistry)
            self._refresh(replay=True)

        last, self._last = self._last, (obs.time, obs.balancing is True, obs.expected is True)
        if last is not None and 0 < obs.time - last[0] <= self.max_gap:
            # The state seen at the previous poll held until this one.
            elapsed = obs.time - last[0]
            today.balancing_s += elapsed if last[1] else 0.0
            today.expected_s += elapsed if last[2] else 0.0

        if obs.balancer_enabled is False:
            today.switched_off = True
        if obs.start_voltage is not None:
            today.start_voltage = round(obs.start_voltage * 1000)
        if obs.start_delta is not None:
            today.start_delta = round(obs.start_delta * 1000)
        self._fold_cells(today, obs)

    @staticmethod
    def _fold_cells(today: _Today, obs: Observation) -> None:
        # Millivolts, as the module measures: no float residue at a knee.
        high = low = -1
        high_mv = low_mv = 0
        plausible_min, plausible_max = _PLAUSIBLE_MV[today.chemistry]
        for index, volts in enumerate(obs.cells):
            if volts is None:
                continue
            mv = round(volts * 1000)
            if not plausible_min <= mv <= plausible_max:
                continue
            if high < 0 or mv > high_mv:
                high, high_mv = index, mv
            if low < 0 or mv < low_mv:
                low, low_mv = index, mv
        if high < 0:
            return
        if today.max_cell is None or high_mv > today.max_cell:
            today.max_cell = high_mv
        knees = KNEES[today.chemistry]
        difference = high_mv - low_mv
        if high_mv > round(knees.upper * 1000):
            if today.top_difference is None or difference > today.top_difference:
                today.top_difference = difference
            _count(today.highest_at_top, high, len(obs.cells))
        if low_mv < round(knees.lower * 1000):
            if today.bottom_difference is None or difference > today.bottom_difference:
                today.bottom_difference = difference
            _count(today.lowest_at_bottom, low, len(obs.cells))

    def _close_day(self, summary: DaySummary, new_day: date) -> None:
        self._days.append(summary)
        oldest = new_day - timedelta(days=KEEP_DAYS - 1)
        if self._days[0].day < oldest:
            self._days = [day for day in self._days if day.day >= oldest]

    def _refresh(self, *, replay: bool = False) -> None:
        """Work out what depends on finished days only (once a day, or when the pack changed).

        ``replay``: judge "not keeping up" day by day from the first finished day, as when the
        days were lived (after loading, or when the chemistry or the cell count changed).
        """
        today = self._today
        assert today is not None
        finished = [day for day in self._days if day.chemistry == today.chemistry and _of_cells(day, self._cells)]
        first = today.day - timedelta(days=TREND_DAYS - 1)
        recent = [day for day in finished if day.day >= first]
        self._recent = (
            _sum_counts(day.lowest_at_bottom for day in recent),
            _sum_counts(day.highest_at_top for day in recent),
        )
        self._yesterday = next(
            (day.top_difference for day in finished if day.day == today.day - timedelta(days=1)), None
        )
        topped = [day for day in finished if day.top_difference is not None]
        bottomed = [day for day in finished if day.weakest_cell is not None]
        self._trend = _slope(topped[-TREND_DAYS:])
        if not replay:
            self._verdict = self._judge(topped, bottomed, self._verdict)
            return
        verdict = None
        for end in range(1, len(finished) + 1):
            last = finished[end - 1].day
            verdict = self._judge(
                [day for day in topped if day.day <= last], [day for day in bottomed if day.day <= last], verdict
            )
        self._verdict = verdict

    # --- answers ----------------------------------------------------------------------------

    @property
    def days(self) -> tuple[DaySummary, ...]:
        """Every kept day, oldest first, today (so far) last."""
        return (*self._days, self._today.summary()) if self._today else tuple(self._days)

    @property
    def chemistry(self) -> BatteryType | None:
        """The chemistry of the latest observation."""
        return self._today.chemistry if self._today else None

    def answers(self) -> Answers:
        """What the insights say now (O(cells): the finished days' part is worked out once a day)."""
        today = self._today
        if today is None:
            return Answers(None, None, None, None, 0.0, 0.0, None, (), None, (), None)
        lowest = _sum_counts((self._recent[0], today.lowest_at_bottom))
        highest = _sum_counts((self._recent[1], today.highest_at_top))
        return Answers(
            top_difference_today=today.top_difference,
            top_difference_yesterday=self._yesterday,
            bottom_difference_today=today.bottom_difference,
            trend=self._trend,
            balancing_today_s=today.balancing_s,
            expected_today_s=today.expected_s,
            weakest_cell=_most_often(lowest),
            lowest_at_bottom=lowest,
            highest_cell_at_top=_most_often(highest),
            highest_at_top=highest,
            not_keeping_up=self._verdict,
        )

    def _judge(
        self, topped: list[DaySummary], bottomed: list[DaySummary], previous: NotKeepingUp | None
    ) -> NotKeepingUp | None:
        """Whether the balancer is not keeping up after the last of ``topped``.

        Raised when the trend was at least ``rising_mv_per_day`` on each of the last
        ``rising_days`` finished days with a top; once raised it stays while the trend is above
        0: on LiFePO4 the top difference runs into the charge cut-off (about 200 mV) and then
        grows only slowly, though the pack is no better.
        ``topped``: finished days of the current chemistry with a top-of-charge difference;
        ``bottomed``: those with a cell lowest at the bottom.
        """
        count = self.rising_days
        if len(topped) < max(count, TREND_MIN_DAYS):
            return None
        ends = range(len(topped) - count + 1, len(topped) + 1)
        slopes = [_slope(topped[max(0, end - TREND_DAYS) : end]) for end in ends]
        latest = slopes[-1]
        rising = all(slope is not None and slope >= self.rising_mv_per_day for slope in slopes)
        if latest is None or not (rising or (previous is not None and latest > 0)):
            return None
        window = topped[-count:]
        causes: list[Cause] = []
        if any(day.switched_off for day in window):
            causes.append(Cause.BALANCER_OFF)
        if all(_below(day.max_cell, day.start_voltage) for day in window):
            causes.append(Cause.TURN_ON_VOLTAGE)
        if all(_below(day.top_difference, day.start_delta) for day in window):
            causes.append(Cause.TURN_ON_DIFFERENCE)
        weakest = {day.weakest_cell for day in bottomed[-count:]}
        cell = weakest.pop() if len(bottomed) >= count and len(weakest) == 1 else None
        if cell is not None:
            causes.append(Cause.CELL_CAPACITY)
        return NotKeepingUp(trend=round(latest, 2), days=count, causes=tuple(causes), cell=cell)

    # --- storage ----------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """The state as plain JSON-able data (for Home Assistant's ``Store``)."""
        return {"version": FORMAT_VERSION, "days": [day.as_dict() for day in self.days]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, **options: Any) -> Insights:
        """The state ``as_dict`` made, migrated from an older format; fresh when unreadable."""
        insights = cls(**options)
        try:
            stored = migrate(data) if data is not None else None
            days = sorted((DaySummary.from_dict(day) for day in stored["days"]), key=lambda d: d.day) if stored else []
        except KeyError, TypeError, ValueError:
            return insights
        if days:
            insights._days = days[:-1]
            insights._today = _Today.of(days[-1])
            insights._cells = next(
                (
                    len(counts)
                    for day in reversed(days)
                    for counts in (day.highest_at_top, day.lowest_at_bottom)
                    if counts
                ),
                None,
            )
            insights._refresh(replay=True)
        return insights


def _v1_to_v2(data: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1 (this branch's first layout, never released) kept differences in volts."""
    days = []
    for stored in data["days"]:
        day = dict(stored)
        for key in ("top_difference", "bottom_difference", "max_cell", "start_voltage", "start_delta"):
            if day.get(key) is not None:
                day[key] = round(float(day[key]) * 1000)
        days.append(day)
    return {"version": 2, "days": days}


#: One step per older version: the layout ``version`` → ``version + 1``.
MIGRATIONS: Final[Mapping[int, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {1: _v1_to_v2}


def migrate(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data`` brought up to ``FORMAT_VERSION`` (KeyError for an unknown older version).

    A newer version (written by a later release, then downgraded from) is returned as it is: a
    newer layout only adds to this one (Home Assistant's rule for a store's minor version), so
    its days are read as far as this release knows their fields, not thrown away.
    """
    version = data["version"]
    if version > FORMAT_VERSION:
        return data
    while version != FORMAT_VERSION:
        data = MIGRATIONS[version](data)
        version = data["version"]
    return data


def _of_cells(day: DaySummary, cells: int | None) -> bool:
    """Whether ``day``'s per-cell counts are of a pack of ``cells`` cells (a day without any is)."""
    return cells is None or all(len(counts) in {0, cells} for counts in (day.highest_at_top, day.lowest_at_bottom))


def _below(value: int | None, limit: int | None) -> bool:
    return value is not None and limit is not None and value < limit


def _count(counts: list[int], index: int, cells: int) -> None:
    if len(counts) < cells:
        counts.extend([0] * (cells - len(counts)))
    counts[index] += 1


def _sum_counts(rows: Iterable[Sequence[int]]) -> tuple[int, ...]:
    total: list[int] = []
    for row in rows:
        if len(total) < len(row):
            total.extend([0] * (len(row) - len(total)))
        for index, count in enumerate(row):
            total[index] += count
    return tuple(total)


def _most_often(counts: Sequence[int]) -> int | None:
    """The 1-based cell with the highest count (the lowest number on a tie); None without counts."""
    if not any(counts):
        return None
    return max(range(len(counts)), key=lambda i: (counts[i], -i)) + 1


def _slope(days: Sequence[DaySummary]) -> float | None:
    """Least-squares slope of the top difference over the calendar days (None below the minimum)."""
    points = [(day.day.toordinal(), day.top_difference) for day in days if day.top_difference is not None]
    if len(points) < TREND_MIN_DAYS:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
