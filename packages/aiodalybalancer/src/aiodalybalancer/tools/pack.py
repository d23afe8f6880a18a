"""A simulated battery pack that lives through days: the cells behind the simulated module.

Each cell holds charge (Ah) against its own capacity, and its voltage follows its chemistry's
open-circuit-voltage curve, so the LiFePO4 plateau (a few mV between 30 % and 98 %) and the knees
at both ends are real. A day brings solar charge (a half sine from 07:00 to 19:00) against a
steady load; the charger stops at the first cell to reach the top and the load backs off at the
first to reach the bottom, as a BMS would make them. Cells differ in capacity (one is weak) and in
self-discharge, so they drift apart; the balancer moves charge from the highest cell to the lowest
at its current (the module's 1 A) whenever the manual's two conditions hold.

Time is the model's own: the caller advances it (:meth:`PackModel.advance`), so 14 days run in
seconds. The simulator (``simulator.SimulatedBalancer(pack=...)``) lets the model drive its cells
and tells it when its registers say the module balances; on its own the model judges the manual's
rule from :class:`BalancerSettings`. ``python -m reliability.pack_days`` (in the repository) prints the integration's daily insights
of a 14-day run with the balancer on and off.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
import itertools
import math
import random
import time
from typing import Final

from aiodalybalancer.registers import BatteryType

from .simulator import SimulatedBalancer, SimulatorConfig

DAY: Final = 86400.0
#: Longest step of the model (s): the charge a step moves stays far below a knee's width.
MAX_STEP: Final = 60.0
#: The module's transfer current (A): 1 A (seed manual's product catalogue). Lossless here.
BALANCE_CURRENT: Final = 1.0
#: The day's solar current peaks at this fraction of the capacity per hour (C); the load draws
#: this fraction steadily: about 2.3 C of sun against 1.9 C of load a day, so the pack reaches
#: both ends every day.
SOLAR_PEAK_C: Final = 0.3
LOAD_C: Final = 0.08
SUNRISE_H: Final = 7.0
SUNSET_H: Final = 19.0
#: Internal resistance per cell (Ω at 100 Ah, scaled by capacity): the terminal voltage is the
#: OCV plus current × resistance.
RESISTANCE_100AH: Final = 0.0005


@dataclass(frozen=True, slots=True)
class Curve:
    """A chemistry's open-circuit voltage over state of charge, and where charge and load stop."""

    #: (state of charge 0..1, volts) breakpoints, rising; linear between them.
    points: tuple[tuple[float, float], ...]
    #: The charger stops when a cell's OCV reaches ``top``; the load backs off at ``bottom``.
    top: float
    bottom: float

    def volts(self, soc: float) -> float:
        """The OCV at ``soc`` (clamped to the curve's ends)."""
        points = self.points
        if soc <= points[0][0]:
            return points[0][1]
        if soc >= points[-1][0]:
            return points[-1][1]
        i = bisect_right(points, (soc, math.inf)) - 1
        (s0, v0), (s1, v1) = points[i], points[i + 1]
        return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)

    def soc(self, volts: float) -> float:
        """The state of charge whose OCV is ``volts`` (the inverse of :meth:`volts`)."""
        points = self.points
        if volts <= points[0][1]:
            return points[0][0]
        for (s0, v0), (s1, v1) in itertools.pairwise(points):
            if volts <= v1:
                return s0 + (s1 - s0) * (volts - v0) / (v1 - v0)
        return points[-1][0]


#: OCV curves. LiFePO4: Lithium Werks APR18650M1B; Li-ion: Samsung INR21700-40T (both the public
#: tables in github.com/soorajsunil/Piecewise-Battery-OCV). LTO: [INF] a plateau around the
#: nominal 2.3–2.4 V inside the manual's 1.8–2.8 V, no public table found.
CURVES: Final[Mapping[BatteryType, Curve]] = {
    BatteryType.LIFEPO4: Curve(
        (
            (0.0, 2.5),  # the table's 2.0102 V at 0 % is below any BMS's cut-off
            (0.0117, 2.7405),
            (0.0267, 2.9299),
            (0.0534, 3.0872),
            (0.0885, 3.1942),
            (0.2972, 3.2772),
            (0.9833, 3.3511),
            (0.9950, 3.4180),
            (1.0, 3.5981),
        ),
        top=3.55,
        bottom=3.0,
    ),
    BatteryType.LI_ION: Curve(
        (
            (0.0, 2.5),
            (0.005, 2.808),
            (0.0352, 3.1179),
            (0.0854, 3.3182),
            (0.1357, 3.4193),
            (0.2915, 3.5826),
            (0.4523, 3.6941),
            (0.8392, 4.0664),
            (0.9548, 4.1121),
            (1.0, 4.2),
        ),
        top=4.15,
        bottom=3.3,
    ),
    BatteryType.LTO: Curve(
        ((0.0, 1.8), (0.05, 1.95), (0.1, 2.1), (0.5, 2.3), (0.9, 2.45), (0.95, 2.6), (1.0, 2.8)),
        top=2.7,
        bottom=1.9,
    ),
}


@dataclass(frozen=True, slots=True)
class BalancerSettings:
    """The module's switch and turn-on settings, for a model that runs without the simulator."""

    enabled: bool = True
    start_voltage: float = 3.3
    start_delta: float = 0.020

    def holds(self, cells: tuple[float, ...]) -> bool:
        """The manual's rule on ``cells`` (volts): switch on, turn-on voltage and difference reached."""
        high, low = round(max(cells) * 1000), round(min(cells) * 1000)
        return (
            self.enabled and high >= round(self.start_voltage * 1000) and high - low >= round(self.start_delta * 1000)
        )


class PackModel:
    """The cells of one pack, on a clock the caller advances (``time`` s since day 0, 00:00)."""

    def __init__(
        self,
        capacities: list[float],
        *,
        chemistry: BatteryType = BatteryType.LIFEPO4,
        soc: list[float] | None = None,
        leaks: list[float] | None = None,
        settings: BalancerSettings | None = None,
        nominal: float = 100.0,
    ) -> None:
        """Cells of ``capacities`` (Ah) at ``soc`` (0..1), each leaking ``leaks`` (A)."""
        self._chemistry = chemistry
        self.capacities = list(capacities)
        self.charge = [cap * s for cap, s in zip(capacities, soc or [0.5] * len(capacities), strict=True)]
        self.leaks = list(leaks or [0.0] * len(capacities))
        self.settings = settings or BalancerSettings()
        #: The pack's rating (Ah): the profile's currents scale with it.
        self.nominal = nominal
        self.time = 0.0
        #: The current through the string (A, charge positive) and whether the balancer ran, in the latest step.
        self.current = 0.0
        self.balancing = False
        self._voltages: tuple[float, ...] | None = None

    @property
    def chemistry(self) -> BatteryType:
        """The cells' chemistry (setting it swaps the curve, as if other cells sat at the same charge)."""
        return self._chemistry

    @chemistry.setter
    def chemistry(self, chemistry: BatteryType) -> None:
        self._chemistry = chemistry
        self._voltages = None

    @property
    def curve(self) -> Curve:
        """The chemistry's curve."""
        return CURVES[self._chemistry]

    def soc(self) -> list[float]:
        """Each cell's state of charge."""
        return [q / cap for q, cap in zip(self.charge, self.capacities, strict=True)]

    def cell_voltages(self) -> tuple[float, ...]:
        """Each cell's terminal voltage (V, to the mV the module measures)."""
        if self._voltages is None:
            curve = self.curve
            current = self.current * RESISTANCE_100AH * 100.0
            self._voltages = tuple(
                round(curve.volts(q / cap) + current / cap, 3)
                for q, cap in zip(self.charge, self.capacities, strict=True)
            )
        return self._voltages

    def profile(self, at: float) -> float:
        """The current the sun and the load would put through the pack at ``at`` (A, charge positive)."""
        hour = at % DAY / 3600
        sun = 0.0
        if SUNRISE_H < hour < SUNSET_H:
            sun = SOLAR_PEAK_C * self.nominal * math.sin(math.pi * (hour - SUNRISE_H) / (SUNSET_H - SUNRISE_H))
        return sun - LOAD_C * self.nominal

    def advance(self, seconds: float, *, balancing: bool | None = None) -> None:
        """Run ``seconds`` more in steps of at most ``MAX_STEP``.

        ``balancing`` None: the model judges the manual's rule from ``settings`` at each step;
        otherwise the caller (the simulator, from its registers) says whether the module balances.
        """
        steps = max(1, math.ceil(seconds / MAX_STEP))
        for _ in range(steps):
            self.step(seconds / steps, balancing=balancing)

    def step(self, dt: float, *, balancing: bool | None = None) -> None:
        """One step of ``dt`` seconds."""
        curve = self.curve
        hours = dt / 3600
        wanted = self.profile(self.time + dt / 2)
        socs = self.soc()
        # The BMS stops the charge at the first cell to reach the top and the load at the first
        # to reach the bottom: the current is cut to what the nearest cell can still take.
        if wanted > 0:
            full = curve.soc(curve.top)
            room = min((full - s) * cap for s, cap in zip(socs, self.capacities, strict=True))
            current = min(wanted, max(room, 0.0) / hours)
        else:
            empty = curve.soc(curve.bottom)
            room = min((s - empty) * cap for s, cap in zip(socs, self.capacities, strict=True))
            current = max(wanted, -max(room, 0.0) / hours)
        cells = self.cell_voltages()  # as they were during the step: what the balancer saw
        self.current = current
        self.balancing = self.settings.holds(cells) if balancing is None else balancing
        for i, leak in enumerate(self.leaks):
            self.charge[i] += (current - leak) * hours
        if self.balancing:
            high = max(range(len(cells)), key=cells.__getitem__)
            low = min(range(len(cells)), key=cells.__getitem__)
            moved = BALANCE_CURRENT * hours
            self.charge[high] -= moved
            self.charge[low] += moved
        for i, cap in enumerate(self.capacities):
            self.charge[i] = min(max(self.charge[i], 0.0), cap)
        self.time += dt
        self._voltages = None


def weak_cell_pack(
    *,
    cells: int = 16,
    chemistry: BatteryType = BatteryType.LIFEPO4,
    weak_cell: int = 5,
    weak_capacity: float = 85.0,
    leaky_cell: int = 11,
    spread: float = 0.015,
    seed: int = 0,
    settings: BalancerSettings | None = None,
    days_in: float = 0.0,
) -> PackModel:
    """A pack of ``cells`` about 100 Ah, cell ``weak_cell`` (1-based) only ``weak_capacity``.

    At midnight of day 0 the cells miss 70 Ah to full, up to ``spread`` (of 100 Ah) apart; each self-discharges 0–3 mA, cell
    ``leaky_cell`` 10 mA more (about 0.25 Ah a day), so without balancing the top drifts apart.
    A pack of fewer cells than ``weak_cell`` has its last cell weak; of fewer than
    ``leaky_cell``, the first cell that is not the weak one leaks.
    ``days_in``: run that many days first (balancer as ``settings`` say).
    """
    if weak_cell < 1 or leaky_cell < 1:
        raise ValueError(f"cells are numbered from 1, got weak cell {weak_cell}, leaky cell {leaky_cell}")
    weak_cell = min(weak_cell, cells)
    if leaky_cell > cells:
        leaky_cell = 2 if weak_cell == 1 else 1
    rng = random.Random(seed)
    capacities = [100.0 + rng.uniform(-2, 2) for _ in range(cells)]
    capacities[weak_cell - 1] = weak_capacity
    leaks = [rng.uniform(0, 0.003) for _ in range(cells)]
    leaks[leaky_cell - 1] += 0.010
    # Top-balanced once, the cells miss about the same charge to full (the weak one is emptier).
    soc = [(cap - 70.0 + 100.0 * rng.uniform(-spread, spread)) / cap for cap in capacities]
    if settings is None:
        settings = BalancerSettings(
            start_voltage=3.3 if chemistry is BatteryType.LIFEPO4 else CURVES[chemistry].volts(0.9)
        )
    pack = PackModel(capacities, chemistry=chemistry, soc=soc, leaks=leaks, settings=settings)
    if days_in:
        pack.advance(days_in * DAY)
    return pack


def weak_cell_simulator(
    days_in: float = 0.0,
    config: SimulatorConfig | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    weak_cell: int = 5,
    seed: int = 0,
) -> SimulatedBalancer:
    """A simulated module on a pack with a weak cell that has lived ``days_in`` days.

    The pack's first days run with the module's factory settings (balancer on, 3.3 V / 20 mV).
    """
    config = config or SimulatorConfig()
    pack = weak_cell_pack(
        cells=config.cells, chemistry=config.battery_type, weak_cell=weak_cell, seed=seed, days_in=days_in
    )
    return SimulatedBalancer(config, clock=clock, pack=pack)
