"""The integration's daily pack insights over a simulated pack that lives through days.

``python -m reliability.pack_days`` prints the daily table of a pack with a weak cell over 14
days, once with the balancer on and once with it off. The pack is the library's model
(``aiodalybalancer.tools.pack``); the insights are the integration's (``insights.py``), fed one
observation per step as the coordinator feeds them one per poll.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from aiodalybalancer.tools.pack import DAY, MAX_STEP, PackModel, weak_cell_pack
from custom_components.daly_active_balance.insights import Insights, Observation


def live(
    pack: PackModel, insights: Insights, days: float, *, step: float = MAX_STEP, start: date = date(2026, 1, 1)
) -> Iterator[Observation]:
    """Run ``pack`` for ``days``, feeding ``insights`` one observation per ``step`` (yielded too)."""
    end = pack.time + days * DAY
    while pack.time < end - 1e-6:
        pack.advance(step)
        settings = pack.settings
        obs = Observation(
            time=pack.time,
            day=start + timedelta(days=int(pack.time // DAY)),
            cells=pack.cell_voltages(),
            chemistry=pack.chemistry,
            balancing=pack.balancing,
            expected=pack.balancing,
            balancer_enabled=settings.enabled,
            start_voltage=settings.start_voltage,
            start_delta=settings.start_delta,
        )
        insights.observe(obs)
        yield obs


def history(days_in: float, today: date, *, seed: int = 0) -> dict[str, Any]:
    """What the insights kept of a pack with a weak cell that has lived ``days_in`` days until now.

    The pack is the one ``weak_cell_simulator(days_in)`` serves (its defaults: 16 LiFePO4 cells,
    ``seed``), polled once a minute from its day 0; its last day is ``today``. This is the stored
    form (``Insights.as_dict``) Home Assistant's store of the module holds.
    """
    insights = Insights()
    for _ in live(weak_cell_pack(seed=seed), insights, days_in, start=today - timedelta(days=int(days_in))):
        pass
    return insights.as_dict()


def daily_table(
    days: int = 14, *, balancer: bool = True, settle: float = 5, seed: int = 0, step: float = MAX_STEP
) -> str:
    """The daily insights of a pack with a weak cell over ``days``, as a text table.

    The pack first lives ``settle`` days with the balancer on (not in the table), then ``days``
    with it ``balancer``; the insights see a poll every ``step`` seconds.
    """
    pack = weak_cell_pack(seed=seed, days_in=settle)
    pack.settings = replace(pack.settings, enabled=balancer)
    insights = Insights()
    rows = [
        f"{'day':>3} {'top mV':>6} {'bottom mV':>9} {'bal h':>5} {'exp h':>5} {'weakest':>7} {'high@top':>8} "
        f"{'trend':>6}  not keeping up"
    ]
    for day in range(days):
        for _ in live(pack, insights, 1, step=step):
            pass
        answers = insights.answers()
        summary = insights.days[-2]  # the day just finished: the last poll is 00:00 of the next
        trend = "–" if answers.trend is None else f"{answers.trend:+.1f}"
        alarm = answers.not_keeping_up
        rows.append(
            f"{day + 1:>3} {_mv(summary.top_difference):>6} {_mv(summary.bottom_difference):>9} "
            f"{summary.balancing_s / 3600:>5.1f} {summary.expected_s / 3600:>5.1f} "
            f"{_cell(summary.weakest_cell):>7} {_cell(_top(summary)):>8} {trend:>6}  "
            + ("–" if alarm is None else ", ".join(alarm.causes))
        )
    return "\n".join(rows)


def _mv(value: int | None) -> str:
    return "–" if value is None else str(value)


def _cell(value: int | None) -> str:
    return "–" if value is None else str(value)


def _top(summary: object) -> int | None:
    counts: tuple[int, ...] = getattr(summary, "highest_at_top", ())
    return max(range(len(counts)), key=counts.__getitem__) + 1 if any(counts) else None


def main(argv: list[str] | None = None) -> None:
    """Print the daily tables of a run with the balancer on and one with it off."""
    parser = argparse.ArgumentParser(prog="python -m reliability.pack_days", description=main.__doc__)
    parser.add_argument("--days", type=int, default=14, help="days in each table (default 14)")
    parser.add_argument("--settle", type=float, default=5, help="days the pack lives first, balancer on (default 5)")
    args = parser.parse_args(argv)
    for on in (True, False):
        print(f"Balancer {'on' if on else 'off'}:")
        print(daily_table(args.days, balancer=on, settle=args.settle))
        print()


if __name__ == "__main__":
    main()
