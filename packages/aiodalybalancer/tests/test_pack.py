"""The simulated pack: its curves, the balancer's charge transfer, the day, and the simulator hook."""

from __future__ import annotations

import pytest

from aiodalybalancer.frames import WriteSingle
from aiodalybalancer.registers import BY_KEY, BatteryType
from aiodalybalancer.tools.pack import (
    CURVES,
    DAY,
    BalancerSettings,
    PackModel,
    weak_cell_pack,
    weak_cell_simulator,
)
from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig

LFP = CURVES[BatteryType.LIFEPO4]


def test_lifepo4_curve_is_the_public_table_with_its_plateau() -> None:
    """Breakpoints of the Lithium Werks APR18650M1B table; linear between them."""
    assert LFP.volts(0.2972) == 3.2772
    assert LFP.volts(0.9833) == 3.3511
    # Halfway along the plateau: (3.2772 + 3.3511) / 2 = 3.31415 V.
    assert LFP.volts((0.2972 + 0.9833) / 2) == pytest.approx(3.31415)
    assert LFP.volts(-1) == 2.5
    assert LFP.volts(2) == 3.5981
    # The inverse: 3.55 V is (3.55 − 3.418) / (3.5981 − 3.418) of the way from 99.5 % to 100 %.
    assert LFP.soc(3.55) == pytest.approx(0.995 + 0.005 * 0.132 / 0.1801)
    assert LFP.soc(1.0) == 0.0
    assert LFP.soc(4.0) == 1.0


def test_balancer_settings_judge_the_manual_rule_in_millivolts() -> None:
    rule = BalancerSettings(enabled=True, start_voltage=3.3, start_delta=0.02)
    assert rule.holds((3.300, 3.280))  # both at their edge
    assert not rule.holds((3.299, 3.270))  # below the turn-on voltage
    assert not rule.holds((3.400, 3.381))  # 19 mV
    assert not BalancerSettings(enabled=False).holds((3.5, 3.3))


def _idle(cells: int = 3, soc: float = 0.99) -> PackModel:
    """A pack with no sun, no load and no self-discharge."""
    pack = PackModel([100.0] * cells, soc=[soc] * cells)
    pack.nominal = 0.0
    return pack


def test_the_balancer_moves_one_ampere_from_the_highest_to_the_lowest_cell() -> None:
    pack = _idle()
    pack.charge = [99.5, 99.0, 98.9]  # 3.42 V-ish, plateau end, plateau: the rule holds
    pack.advance(600, balancing=True)
    # 1 A for 10 min = 1/6 Ah, lossless, from the highest cell; 0.1 Ah lifts cell 3 to cell 2,
    # then the lowest alternates between them (1/60 Ah a step).
    assert sum(pack.charge) == pytest.approx(99.5 + 99.0 + 98.9)
    assert pack.charge[0] == pytest.approx(99.5 - 1 / 6)
    pack.advance(3000, balancing=True)
    # 1 Ah in all, more than the 0.6 Ah spread: the cells end within a step's transfer.
    assert max(pack.charge) - min(pack.charge) <= 1 / 60 + 1e-9
    assert sum(pack.charge) == pytest.approx(99.5 + 99.0 + 98.9)
    still = _idle()
    still.charge = [99.5, 99.0, 98.9]
    still.advance(3600, balancing=False)
    assert still.charge == [99.5, 99.0, 98.9]


def test_on_its_own_the_pack_judges_the_rule_from_its_settings() -> None:
    pack = _idle()
    pack.charge = [99.6, 99.0, 99.0]
    pack.settings = BalancerSettings(start_voltage=3.6)
    pack.advance(600)
    assert not pack.balancing
    pack.settings = BalancerSettings(start_voltage=3.3)
    pack.advance(60)
    assert pack.balancing


def test_a_day_reaches_both_ends_and_stops_at_them() -> None:
    pack = weak_cell_pack()
    top, bottom = LFP.soc(LFP.top), LFP.soc(LFP.bottom)
    highest, lowest = 0.0, 1.0
    for _ in range(24 * 12):
        pack.advance(300)
        socs = pack.soc()
        highest, lowest = max(highest, *socs), min(lowest, *socs)
    assert top - 0.001 < highest <= top + 1e-9
    assert lowest == pytest.approx(bottom, abs=0.001)  # self-discharge goes on below
    assert pack.time == pytest.approx(DAY)


def test_leaks_drain_cells_apart() -> None:
    pack = _idle(cells=2, soc=0.5)
    pack.leaks = [0.0, 0.010]
    pack.advance(DAY)
    # 10 mA for 24 h = 0.24 Ah.
    assert pack.charge == pytest.approx([50.0, 50.0 - 0.24])


def test_the_simulator_takes_its_cells_and_balancing_from_the_pack() -> None:
    now = [1000.0]
    sim = weak_cell_simulator(2, clock=lambda: now[0])
    pack = sim.pack
    assert isinstance(pack, PackModel)
    assert pack.time == pytest.approx(2 * DAY)
    assert sim.cell_voltages() == pack.cell_voltages()
    start = pack.time
    now[0] += 6 * 3600  # the test clock moves the pack too
    sim.advance(0)
    assert pack.time == pytest.approx(start + 6 * 3600)
    sim.advance(DAY)
    assert pack.time == pytest.approx(start + 6 * 3600 + DAY)
    assert sim.cell_voltages() == pack.cell_voltages()
    assert sim.value("max_cell_voltage") == max(pack.cell_voltages())


def test_the_module_registers_decide_when_the_pack_balances() -> None:
    """A turn-on voltage above the pack's top, written to the module, keeps the pack from balancing."""
    sim = weak_cell_simulator(clock=lambda: 0.0)
    assert isinstance(sim.pack, PackModel)
    seen = False
    for _ in range(24 * 12):
        sim.advance(300)
        seen |= sim.pack.balancing
    assert seen
    address = BY_KEY["balance_start_voltage"].address
    write = WriteSingle(address, BY_KEY["balance_start_voltage"].encode(3.6)).encode()
    assert sim.receive(write) or sim.receive(write)  # the first one wakes a sleeping module
    assert sim.pack.settings.start_voltage == 3.3  # the pack's own settings play no part
    for _ in range(24 * 12):
        sim.advance(300)
        assert not sim.pack.balancing
        assert not sim.balancing


def test_a_pack_must_match_the_module_cell_count() -> None:
    with pytest.raises(ValueError, match="the pack has 16 cells, the module 8"):
        SimulatedBalancer(SimulatorConfig(cells=8), pack=weak_cell_pack())


def test_a_li_ion_pack_follows_its_own_curve() -> None:
    pack = PackModel([100.0, 100.0], chemistry=BatteryType.LI_ION, soc=[0.9548, 0.9548])
    assert pack.cell_voltages() == (4.112, 4.112)  # the Samsung table's 95.48 % breakpoint
    pack.chemistry = BatteryType.LTO
    assert pack.chemistry is BatteryType.LTO
    assert pack.cell_voltages()[0] == 2.619  # 2.6 + (2.8 − 2.6) · (0.9548 − 0.95) / 0.05 = 2.61920
    given = BalancerSettings(start_voltage=4.0)
    assert weak_cell_pack(chemistry=BatteryType.LI_ION, settings=given).settings is given


def test_speed_runs_the_physics_faster_but_the_sleep_timer_in_real_time() -> None:
    """``speed``: a host polling at its usual pace sees the pack live through hours in minutes."""
    now = [0.0]
    sim = weak_cell_simulator(config=SimulatorConfig(speed=60), clock=lambda: now[0])
    assert isinstance(sim.pack, PackModel)
    sleep_time = sim.value("sleep_time")
    assert isinstance(sleep_time, int)
    assert 120 < sleep_time <= 2 * 3600
    now[0] += 120
    sim.advance(0)
    assert sim.pack.time == pytest.approx(2 * 3600)  # two hours of the pack in two minutes of the clock
    assert not sim.asleep  # two minutes of silence, not two hours
    now[0] += sleep_time
    assert sim.asleep
    # The manual's rule is judged at each model step, not once per long catch-up: over a day at
    # 1440 times (a minute of clock) the module balances and stops again.
    fast = weak_cell_simulator(config=SimulatorConfig(speed=1440), clock=lambda: now[0])
    seen = set()
    for _ in range(60):
        now[0] += 1
        fast.advance(0)
        seen.add(fast.balancing)
    assert seen == {True, False}


@pytest.mark.parametrize("speed", [0.5, 0, -1, 2e6])
def test_speed_outside_its_range_is_refused(speed: float) -> None:
    with pytest.raises(ValueError, match=r"speed must be 1\.\.1000000"):
        SimulatorConfig(speed=speed)


@pytest.mark.parametrize(("cells", "weak", "leaky"), [(3, 3, 1), (5, 5, 1), (10, 5, 1), (16, 5, 11)])
def test_a_small_pack_has_its_last_cell_weak(cells: int, weak: int, leaky: int) -> None:
    """The CLI's --cells 3..24 with --pack-days: cells 5 and 11 do not exist in every pack."""
    pack = weak_cell_pack(cells=cells)
    assert min(pack.capacities) == 85.0
    assert pack.capacities.index(85.0) == weak - 1
    assert max(range(cells), key=pack.leaks.__getitem__) == leaky - 1
    pack.advance(DAY)
    assert len(pack.cell_voltages()) == cells


def test_cells_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="numbered from 1"):
        weak_cell_pack(weak_cell=0)
