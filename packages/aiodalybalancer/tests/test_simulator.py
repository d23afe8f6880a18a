"""The device simulator: register bank, D2/A5 front end, physics, sleep, faults and real servers.

Every request here is a real frame built with ``frames.py`` and every answer is parsed back with
the stream re-assembler, so the simulator is checked through the protocol, not through its
internals. Timing assertions only ever use lower bounds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import os
import struct
import time
import tty
from typing import Any

import pytest

from aiodalybalancer import a5
from aiodalybalancer.frames import (
    Direction,
    Frame,
    ReadRequest,
    ReadResponse,
    WriteMultiple,
    WriteMultipleAck,
    WriteSingle,
    crc_ok,
)
from aiodalybalancer.registers import (
    BLOCKS,
    BY_KEY,
    CHEMISTRY,
    LIVE,
    REGISTERS,
    SETTINGS,
    BatteryType,
    Block,
)
from aiodalybalancer.stream import D2Framing, FrameStream
from aiodalybalancer.tools.simulator import (
    Fault,
    FaultPlan,
    Reply,
    SimulatedBalancer,
    SimulatorConfig,
    serve_pty,
    serve_tcp,
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sim(clock: FakeClock | None = None, **config: Any) -> SimulatedBalancer:
    config.setdefault("seed", 11)
    return SimulatedBalancer(SimulatorConfig(**config), clock=clock or FakeClock())


def _responses(data: bytes) -> list[Frame]:
    return FrameStream(D2Framing(Direction.RESPONSE)).feed(data)


def _send(sim: SimulatedBalancer, request: bytes) -> bytes:
    """All bytes the simulator sends back for ``request`` (faults included)."""
    return b"".join(reply.data for reply in sim.receive(request))


def _read(sim: SimulatedBalancer, start: int, count: int) -> tuple[int, ...] | None:
    frames = _responses(_send(sim, ReadRequest(start, count).encode()))
    if not frames:
        return None
    (frame,) = frames
    assert isinstance(frame, ReadResponse)
    return frame.values


def _read_block(sim: SimulatedBalancer, block: Block) -> dict[str, Any]:
    values = _read(sim, block.start, block.count)
    assert values is not None
    return block.decode(values)


def _write(sim: SimulatedBalancer, key: str, raw: int) -> bytes:
    return _send(sim, WriteSingle(BY_KEY[key].address, raw).encode())


def _encode(key: str, value: float | str | bool) -> int:
    return BY_KEY[key].encode(value)


def _number(sim: SimulatedBalancer, key: str) -> float:
    value = sim.value(key)
    assert isinstance(value, (int, float))
    return value


# --- register bank ----------------------------------------------------------------------------


def test_every_block_read_over_the_wire_matches_the_ground_truth() -> None:
    sim = _sim()
    truth = sim.snapshot()
    assert set(truth) == {reg.key for reg in REGISTERS}
    for block in BLOCKS:
        decoded = _read_block(sim, block)
        assert decoded == {key: truth[key] for key in decoded}, block.name
        assert decoded == {key: sim.value(key) for key in decoded}


def test_factory_state_of_a_16s_lifepo4_module() -> None:
    sim = _sim()
    live = _read_block(sim, LIVE)
    cells = sim.cell_voltages()
    assert live["cell_count"] == 16 == len(cells)
    assert live["cell_voltages"][:16] == cells
    assert live["cell_voltages"][16:] == (0.0,) * 16
    assert all(3.30 <= v <= 3.34 for v in cells)
    assert live["pack_voltage"] == pytest.approx(round(sum(cells), 1))
    assert live["max_cell_voltage"] == max(cells)
    assert live["min_cell_voltage"] == min(cells)
    assert live["cell_delta"] == pytest.approx(max(cells) - min(cells), abs=1e-9)
    assert live["average_cell_voltage"] == pytest.approx(sum(cells) / 16, abs=0.0006)
    assert live["current"] == 0.0
    assert live["temperature_sensor_count"] == 1
    assert 25 <= live["temperatures"][0] <= 31
    assert live["balancing"] is False  # a healthy pack is well under the 20 mV difference
    # Slots 7/8 are pack voltage (0.1 V) and average cell mV, as on the real device.
    temps = BY_KEY["temperatures"]
    assert sim.read_word(temps.address + 6) == sim.read_word(BY_KEY["pack_voltage"].address)
    assert sim.read_word(temps.address + 7) == sim.read_word(BY_KEY["average_cell_voltage"].address)
    assert sim.value("mos_temperature") is None
    assert sim.read_word(BY_KEY["mos_temperature"].address) == 0xFFFF
    assert sim.value("software_version") == "B002_111132_03"
    assert sim.value("hardware_version") == "E303-032DG-SMB"
    assert sim.value("password") == "123456"
    assert sim.value("balancer_enabled") is True
    assert sim.value("string_count") == sim.value("register_00ce") == 16
    assert sim.value("battery_type") == BatteryType.LIFEPO4
    assert sim.value("balance_start_voltage") == 3.3  # the seed manual's default
    assert sim.value("balance_start_delta") == 0.02
    assert sim.value("sleep_time") == 3600


def test_unknown_registers_read_like_the_capture(capture: dict[str, Any]) -> None:
    sim = _sim()
    assert _read(sim, 0x0063, 0x1C) == (0xFFFF,) * 0x1C
    assert _read(sim, 0x00DF, 0x11) == (0xFFFF,) * 0x11
    assert _read(sim, 0x0057, 0x0C) == (0,) * 0x0C
    assert _read(sim, 0x00D7, 1) == (0,)
    assert _read(sim, 0x0041, 1) == (0,)  # a gap inside the extended block
    # Settings words the table does not describe hold what the captured balancer returned.
    (settings,) = (r for r in capture["responses"] if r["request"] == "d20300800029965f")
    (captured,) = _responses(bytes.fromhex(settings["hex"]))
    assert isinstance(captured, ReadResponse)
    described = {a for reg in REGISTERS for a in range(reg.address, reg.end)}
    for offset, raw in enumerate(captured.values):
        if SETTINGS.start + offset not in described:
            assert sim.read_word(SETTINGS.start + offset) == raw, hex(SETTINGS.start + offset)


@pytest.mark.parametrize("cells", [3, 16, 24])
def test_cell_count(cells: int) -> None:
    sim = _sim(cells=cells)
    live = _read_block(sim, LIVE)
    assert live["cell_count"] == cells
    assert len(sim.cell_voltages()) == cells
    assert all(v > 3 for v in live["cell_voltages"][:cells])
    assert all(v == 0 for v in live["cell_voltages"][cells:])
    assert sim.value("string_count") == sim.value("register_00ce") == cells
    assert live["pack_voltage"] == pytest.approx(round(sum(sim.cell_voltages()), 1))


@pytest.mark.parametrize(
    ("battery_type", "start_voltage"),
    [(BatteryType.LIFEPO4, 3.3), (BatteryType.LI_ION, 3.9), (BatteryType.LTO, 2.4)],
)
def test_chemistry(battery_type: BatteryType, start_voltage: float) -> None:
    sim = _sim(battery_type=battery_type)
    assert sim.value("battery_type") == battery_type
    assert sim.value("balance_start_voltage") == start_voltage
    chem = CHEMISTRY[battery_type]
    assert chem.balance_min <= start_voltage <= chem.balance_max
    assert all(chem.plausible_min < v < chem.plausible_max for v in sim.cell_voltages())
    assert sim.value("balancing") is False


@pytest.mark.parametrize("sensors", [0, 1, 4])
def test_temperature_sensors(sensors: int) -> None:
    sim = _sim(temperature_sensors=sensors)
    live = _read_block(sim, LIVE)
    assert live["temperature_sensor_count"] == sensors == sim.value("temperature_sensor_setting")
    real = live["temperatures"][:sensors]
    assert all(25 <= t <= 31 for t in real)
    assert sim.words[BY_KEY["temperatures"].address + sensors : BY_KEY["temperatures"].address + 6] == [0] * (
        6 - sensors
    )


@pytest.mark.parametrize(
    "config",
    [
        {"cells": 2},
        {"cells": 25},
        {"temperature_sensors": 5},
        {"model": "bms"},
        {"protocols": frozenset()},
        {"protocols": frozenset({"p81"})},
        {"pace_baud": 0},
        {"response_delay": -1},
    ],
)
def test_impossible_configs_are_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**config)


def test_fault_plan_is_checked() -> None:
    with pytest.raises(ValueError):
        FaultPlan(rate=1.5)
    with pytest.raises(ValueError):
        FaultPlan(rate=0.5, kinds=())
    assert FaultPlan(kinds=("drop",)).kinds == (Fault.DROP,)  # type: ignore[arg-type]


# --- reads ------------------------------------------------------------------------------------


def test_any_range_inside_the_bank_is_readable() -> None:
    sim = _sim()
    assert _read(sim, 0x00F0, 16) == tuple(sim.words[0xF0:0x100])
    assert _read(sim, 0x0000, 62) == tuple(sim.words[:62])
    assert _read(sim, 0x00F1, 16) is None  # would run past 0x00FF
    assert _read(sim, 0x0100, 1) is None


def test_reply_bytes_are_exact() -> None:
    sim = _sim()
    reply = _send(sim, ReadRequest(0x00CC, 5).encode())
    assert reply == ReadResponse(tuple(sim.words[0xCC:0xD1])).encode()
    assert len(_send(sim, ReadRequest(0, 62).encode())) == 129


def test_request_in_pieces_and_after_garbage() -> None:
    sim = _sim()
    request = ReadRequest(0x00CC, 5).encode()
    answers: list[Reply] = []
    for byte in b"AT+VER=?\r\n" + request:
        assert not answers
        answers += sim.receive(bytes([byte]))
    assert len(answers) == 1
    assert _responses(answers[0].data)


def test_bad_crc_is_ignored() -> None:
    sim = _sim()
    request = bytearray(ReadRequest(0, 62).encode())
    request[-1] ^= 0x01
    assert sim.receive(bytes(request)) == []
    assert sim.stats.requests == 0
    assert _read(sim, 0, 1) is not None  # the stream resynchronised


def test_a5_only_module_ignores_d2() -> None:
    sim = _sim(protocols=frozenset({"a5"}))
    assert sim.receive(ReadRequest(0, 62).encode()) == []


# --- writes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("balance_start_voltage", 3.45),
        ("balance_start_delta", 0.005),
        ("balance_start_delta", 0.5),
        ("string_count", 3),
        ("string_count", 24),
        ("battery_type", "lto"),
        ("sleep_time", 10),
        ("sleep_time", 65535),
        ("balancer_enabled", False),
    ],
)
def test_valid_write_is_echoed_and_takes(key: str, value: float | str | bool) -> None:
    sim = _sim()
    raw = _encode(key, value)
    request = WriteSingle(BY_KEY[key].address, raw).encode()
    assert _send(sim, request) == request  # an identical echo
    assert sim.read_word(BY_KEY[key].address) == raw
    assert sim.value(key) == value
    assert sim.stats.writes == 1
    assert sim.stats.refused_writes == 0


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("string_count", 2),
        ("string_count", 25),
        ("battery_type", 3),
        ("balancer_enabled", 2),
        ("balancer_enabled", 0xFFFF),
        ("balance_start_voltage", 4201),
        ("balance_start_voltage", 1799),
        ("balance_start_delta", 4),
        ("balance_start_delta", 501),
        # read-only registers
        ("cell_count", 20),
        ("pack_voltage", 500),
        ("password", 0x3132),
        ("rated_capacity", 1000),
    ],
)
def test_refused_write_gets_no_reply(key: str, raw: int) -> None:
    sim = _sim()
    before = list(sim.words)
    assert _write(sim, key, raw) == b""
    assert sim.words == before
    assert sim.stats.refused_writes == 1
    assert sim.stats.writes == 0


def test_write_to_a_register_outside_the_table_gets_no_reply() -> None:
    sim = _sim()
    assert _send(sim, WriteSingle(0x00D4, 1).encode()) == b""
    assert _send(sim, WriteSingle(0x00F3, 1).encode()) == b""  # factory reset on a BMS: never


def test_ignored_write_is_echoed_but_does_not_take() -> None:
    sim = _sim()
    sim.ignore_writes.add("balance_start_voltage")
    request = WriteSingle(BY_KEY["balance_start_voltage"].address, _encode("balance_start_voltage", 3.5)).encode()
    assert _send(sim, request) == request
    assert sim.value("balance_start_voltage") == 3.3
    assert sim.stats.ignored_writes == 1
    sim.ignore_writes.clear()
    assert _send(sim, request) == request
    assert sim.value("balance_start_voltage") == 3.5


def test_clock_write_multiple_is_acknowledged() -> None:
    sim = _sim()
    clock = (0x180B, 0x0709, 0x341C)  # 2024-11-07 09:52:28, as the app sent it
    reply = _send(sim, WriteMultiple(0x00D4, clock).encode())
    assert _responses(reply) == [WriteMultipleAck(0x00D4, 3)]
    assert tuple(sim.words[0xD4:0xD7]) == clock
    # Elsewhere a write-multiple is not answered and changes nothing.
    before = list(sim.words)
    assert _send(sim, WriteMultiple(0x00A3, (3400, 30)).encode()) == b""
    assert sim.words == before


# --- physics ----------------------------------------------------------------------------------


def _consistent(sim: SimulatedBalancer) -> None:
    words = sim.words
    n = sim.value("cell_count")
    assert isinstance(n, int)
    cells_mv = words[:n]
    assert words[BY_KEY["pack_voltage"].address] == round(sum(cells_mv) / 100)
    assert words[BY_KEY["max_cell_voltage"].address] == max(cells_mv)
    assert words[BY_KEY["min_cell_voltage"].address] == min(cells_mv)
    assert words[BY_KEY["cell_delta"].address] == max(cells_mv) - min(cells_mv)
    assert words[BY_KEY["average_cell_voltage"].address] == round(sum(cells_mv) / n)
    temps = BY_KEY["temperatures"].address
    assert words[temps + 6 : temps + 8] == [round(sum(cells_mv) / 100), round(sum(cells_mv) / n)]


def test_cells_drift_slowly_and_stay_consistent() -> None:
    sim = _sim()
    start = sim.cell_voltages()
    seen = {start}
    for _ in range(30):
        sim.advance(120)
        _consistent(sim)
        seen.add(sim.cell_voltages())
        assert all(abs(a - b) <= 0.012 for a, b in zip(sim.cell_voltages(), start, strict=True))
    assert len(seen) > 10  # they do move
    assert 25 <= _read_block(sim, LIVE)["temperatures"][0] <= 31


def test_drift_is_deterministic_with_a_seed() -> None:
    one, two, other = _sim(seed=5), _sim(seed=5), _sim(seed=6)
    for sim in (one, two, other):
        sim.advance(600)
    assert one.words == two.words
    assert one.cell_voltages() != other.cell_voltages()


def test_physics_follows_the_clock_on_each_request() -> None:
    clock = FakeClock()
    sim = _sim(clock)
    before = sim.cell_voltages()
    assert _read(sim, 0, 62) is not None
    assert sim.cell_voltages() == before  # no time passed
    clock.now += 600
    assert sim.cell_voltages() == before  # the model runs when asked
    assert _read(sim, 0, 62) is not None
    assert sim.cell_voltages() != before


def test_pinned_cell_keeps_its_value() -> None:
    sim = _sim()
    sim.set_cell_voltage(5, 3.512)
    for _ in range(10):
        sim.advance(60)
        assert sim.cell_voltages()[4] == 3.512
        _consistent(sim)
    sim.release_cell(5)
    assert sim.cell_voltages()[4] < 3.4
    with pytest.raises(ValueError):
        sim.set_cell_voltage(17, 3.3)


def _balancing_state(sim: SimulatedBalancer) -> tuple[bool, int, float]:
    extended = _read_block(sim, Block("extended", 0x003E, 9))
    live = _read_block(sim, LIVE)
    bitmap = extended["balancing_cells"][0] | extended["balancing_cells"][1] << 16
    assert live["balancing"] is sim.balancing
    return live["balancing"], bitmap, extended["balance_current"]


def test_balancing_needs_both_conditions_and_the_switch() -> None:
    sim = _sim()
    assert _balancing_state(sim) == (False, 0, 0.0)
    # Cell 5 far above the rest: a cell >= 3.3 V and a difference >= 20 mV.
    sim.set_cell_voltage(5, 3.40)
    balancing, bitmap, current = _balancing_state(sim)
    lowest = sim.cell_voltages().index(min(sim.cell_voltages()))
    assert balancing is True
    assert bitmap == 1 << 4 | 1 << lowest  # the highest and the lowest cell
    assert current == 1.0  # [INF] 30000 + mA, sign unknown
    # Condition 1 fails: no cell reaches the turn-on voltage.
    assert _write(sim, "balance_start_voltage", _encode("balance_start_voltage", 3.45))
    assert _balancing_state(sim) == (False, 0, 0.0)
    assert _write(sim, "balance_start_voltage", _encode("balance_start_voltage", 3.3))
    assert _balancing_state(sim)[0] is True
    # Condition 2 fails: the difference is below the turn-on difference.
    assert _write(sim, "balance_start_delta", _encode("balance_start_delta", 0.1))
    assert _balancing_state(sim)[0] is False
    assert _write(sim, "balance_start_delta", _encode("balance_start_delta", 0.02))
    assert _balancing_state(sim)[0] is True
    # The switch off stops it at once, without any time passing; on starts it again.
    assert _write(sim, "balancer_enabled", 0)
    assert _balancing_state(sim) == (False, 0, 0.0)
    assert _write(sim, "balancer_enabled", 1)
    assert _balancing_state(sim)[0] is True


def test_balancing_moves_charge_and_shrinks_the_difference() -> None:
    sim = _sim()
    unpinned = sim.cell_voltages()[0]
    sim.set_cell_voltage(1, 3.36)
    delta = _number(sim, "cell_delta")
    low = min(sim.cell_voltages())
    assert sim.balancing
    sim.advance(600)
    assert sim.cell_voltages()[0] == 3.36  # pinned: keeps its value
    assert min(sim.cell_voltages()) > low + 0.002
    assert _number(sim, "cell_delta") < delta - 0.002
    _consistent(sim)
    # Switched off, the cells only drift: the lowest no longer climbs.
    assert _write(sim, "balancer_enabled", 0)
    low = min(sim.cell_voltages())
    sim.advance(600)
    assert not sim.balancing
    assert min(sim.cell_voltages()) < low + 0.002
    # No charge was taken from the pinned cell: released, it is where it would have drifted.
    sim.release_cell(1)
    assert abs(sim.cell_voltages()[0] - unpinned) <= 0.012


def test_balancing_stops_by_itself_when_the_difference_is_gone() -> None:
    sim = _sim(cells=4)
    sim.set_cell_voltage(4, 3.345)
    assert sim.balancing
    sim.advance(3 * 3600)
    assert not sim.balancing
    assert _number(sim, "cell_delta") < 0.02


def test_no_balancing_below_two_volts_pack() -> None:
    sim = _sim(cells=3)
    sim.write_word(BY_KEY["balance_start_voltage"].address, 500)  # test control: below the table's range
    for cell, volts in ((1, 0.6), (2, 0.62), (3, 0.7)):
        sim.set_cell_voltage(cell, volts)
    assert sim.value("pack_voltage") == 1.9
    assert not sim.balancing  # 1.92 V pack: disabled
    sim.set_cell_voltage(3, 0.8)
    assert sim.value("pack_voltage") == 2.0
    assert sim.balancing


def test_dual_uart_window_and_difference() -> None:
    sim = _sim(model="dual_uart")
    assert sim.value("balance_start_delta") == 0.05  # that model's default
    sim.set_cell_voltage(2, 3.355)  # ~40 mV above the rest: under 50 mV
    assert not sim.balancing
    sim.set_cell_voltage(2, 3.40)
    assert sim.balancing
    sim.set_cell_voltage(2, 3.75)  # above the 3.0–3.7 V window
    assert not sim.balancing
    # The UART/RS485 model has no upper window.
    uart = _sim()
    uart.set_cell_voltage(2, 3.75)
    assert uart.balancing


def test_balancing_bitmap_reaches_the_second_word() -> None:
    sim = _sim(cells=24)
    sim.set_cell_voltage(24, 3.4)
    sim.set_cell_voltage(3, 3.2)
    _, bitmap, _ = _balancing_state(sim)
    assert bitmap == 1 << 23 | 1 << 2
    assert sim.value("balancing_cells") == (0b100, 1 << 7)


# --- direct control ---------------------------------------------------------------------------


def test_write_word_forces_a_model_word_until_released() -> None:
    sim = _sim()
    balancing = BY_KEY["balancing"].address
    bitmap = BY_KEY["balancing_cells"].address
    sim.write_word(balancing, 1)
    sim.write_word(bitmap, 0b10)
    sim.advance(60)
    assert _read_block(sim, LIVE)["balancing"] is True
    assert sim.value("balancing_cells") == (0b10, 0)
    sim.release_word()
    assert sim.value("balancing") is False
    assert sim.value("balancing_cells") == (0, 0)


def test_write_word_on_a_setting_takes_effect_at_once() -> None:
    sim = _sim()
    sim.set_cell_voltage(1, 3.4)
    assert sim.balancing
    sim.write_word(BY_KEY["balancer_enabled"].address, 0)
    assert not sim.balancing
    assert sim.value("balancing") is False
    sim.write_word(0x0099, 0x1234)  # anything, unvalidated
    assert sim.read_word(0x0099) == 0x1234


# --- sleep ------------------------------------------------------------------------------------


def test_sleeps_after_its_sleep_time_and_traffic_wakes_it() -> None:
    clock = FakeClock()
    sim = _sim(clock)
    assert _read(sim, 0xCC, 5) is not None
    clock.now += 3600
    assert not sim.asleep
    assert _read(sim, 0xCC, 5) is not None  # traffic restarts the timer
    clock.now += 3601
    assert sim.asleep
    assert _read(sim, 0xCC, 5) is None  # wakes it, but this request is lost
    assert not sim.asleep
    assert sim.stats.wakeups == 1
    assert _read(sim, 0xCC, 5) is not None


def test_a_request_split_while_asleep_is_lost_whole() -> None:
    clock = FakeClock()
    sim = _sim(clock)
    clock.now += 4000
    request = ReadRequest(0, 62).encode()
    assert sim.receive(request[:3]) == []
    assert sim.receive(request[3:]) == []
    assert _read(sim, 0, 62) is not None


def test_advance_counts_toward_sleep_and_the_host_sets_the_time() -> None:
    sim = _sim()
    sim.advance(3601)
    assert sim.asleep
    assert _read(sim, 0xCC, 5) is None
    assert _write(sim, "sleep_time", 10)
    sim.advance(10)
    assert not sim.asleep
    sim.advance(1)
    assert sim.asleep


def test_sleep_65535_never_sleeps() -> None:
    sim = _sim()
    assert _write(sim, "sleep_time", 65535)
    sim.advance(10 * 24 * 3600)
    assert not sim.asleep
    assert _read(sim, 0xCC, 5) is not None


def test_silent_module_answers_nothing() -> None:
    sim = _sim()
    sim.silent = True
    assert sim.receive(ReadRequest(0, 62).encode()) == []
    assert sim.stats.requests == 0
    sim.silent = False
    assert _read(sim, 0, 62) is not None


# --- faults -----------------------------------------------------------------------------------


def _faulty(kind: Fault, **plan: Any) -> SimulatedBalancer:
    return _sim(faults=FaultPlan(rate=1.0, kinds=(kind,), seed=4, **plan))


def test_fault_drop() -> None:
    sim = _faulty(Fault.DROP)
    assert sim.receive(ReadRequest(0, 62).encode()) == []
    assert sim.stats.faults == {"drop": 1}
    assert sim.stats.requests == 1
    assert sim.stats.replies == 0


@pytest.mark.parametrize("seed", range(4))
def test_fault_corrupt_flips_one_bit_outside_the_header(seed: int) -> None:
    sim = _sim(faults=FaultPlan(rate=1.0, kinds=(Fault.CORRUPT,), seed=seed))
    for _ in range(10):  # a short reply, so a flip in the header would show
        clean = ReadResponse(tuple(sim.words[0xCC:0xD1])).encode()
        data = _send(sim, ReadRequest(0xCC, 5).encode())
        assert len(data) == len(clean)
        assert data[:3] == clean[:3]
        diff = [a ^ b for a, b in zip(data, clean, strict=True)]
        assert sum(bin(d).count("1") for d in diff) == 1
        assert not crc_ok(data)
        stream = FrameStream(D2Framing(Direction.RESPONSE))
        assert stream.feed(data) == []
        assert stream.stats.bad_checksums >= 1
    assert sim.stats.faults == {"corrupt": 10}


def test_fault_split() -> None:
    sim = _faulty(Fault.SPLIT)
    clean = ReadResponse(tuple(sim.words[0:62])).encode()
    for _ in range(10):
        (reply,) = sim.receive(ReadRequest(0, 62).encode())
        assert 2 <= len(reply.chunks) <= 4
        assert all(reply.chunks)
        assert reply.data == clean
    assert sim.stats.faults == {"split": 10}


def test_fault_merge_adds_a_stale_valid_frame() -> None:
    sim = _sim()
    settings = _send(sim, ReadRequest(0x80, 41).encode())
    sim.faults = FaultPlan(rate=1.0, kinds=(Fault.MERGE,), seed=1)
    live = ReadResponse(tuple(sim.words[0:62])).encode()
    positions = set()
    for _ in range(8):
        data = _send(sim, ReadRequest(0, 62).encode())
        assert len(data) == len(live) + len(settings) or data == live + live
        frames = _responses(data)
        assert len(frames) == 2
        assert ReadResponse(tuple(sim.words[0:62])) in frames
        positions.add(data.startswith(live))
        settings = live
    assert positions == {True, False}  # stale frame both before and after the answer
    assert sim.stats.faults == {"merge": 8}


def test_fault_delay() -> None:
    sim = _sim(faults=FaultPlan(rate=1.0, kinds=(Fault.DELAY,), delay=3.5), response_delay=0.05)
    (reply,) = sim.receive(ReadRequest(0, 62).encode())
    assert reply.delay == pytest.approx(3.55)
    assert _responses(reply.data)


def test_fault_garbage_is_dongle_ascii_around_a_good_frame() -> None:
    sim = _faulty(Fault.GARBAGE)
    clean = ReadResponse(tuple(sim.words[0xCC:0xD1])).encode()
    for _ in range(6):
        data = _send(sim, ReadRequest(0xCC, 5).encode())
        assert clean in data
        noise = data.replace(clean, b"")
        assert noise and noise.decode("ascii").strip() in {"AT+PRODUCTINFO=NoPID", "9600"}
        assert _responses(data) == [ReadResponse(tuple(sim.words[0xCC:0xD1]))]


def test_faults_apply_to_echoes_too() -> None:
    sim = _faulty(Fault.CORRUPT)
    request = WriteSingle(BY_KEY["balancer_enabled"].address, 0).encode()
    echo = _send(sim, request)
    assert len(echo) == 8 and echo != request and echo[:2] == request[:2]
    assert sim.value("balancer_enabled") is False  # the write took; only the echo was hurt


def test_fault_rate_and_seed() -> None:
    def run() -> tuple[int, dict[str, int]]:
        sim = _sim(faults=FaultPlan(rate=0.5, seed=9))
        good = 0
        for _ in range(300):
            replies = sim.receive(ReadRequest(0xCC, 5).encode())
            good += any(
                r.delay == 0 and r.chunks == (ReadResponse(tuple(sim.words[0xCC:0xD1])).encode(),) for r in replies
            )
        assert sim.stats.replies + sim.stats.faults["drop"] == 300
        return good, dict(sim.stats.faults)

    good, faults = run()
    assert 100 < good < 200
    assert set(faults) == {kind.value for kind in Fault}
    assert run() == (good, faults)  # the same seed, the same faults


def test_faults_can_change_at_run_time() -> None:
    sim = _sim()
    assert _read(sim, 0, 62) is not None
    sim.faults = FaultPlan(rate=1.0, kinds=(Fault.DROP,))
    assert _read(sim, 0, 62) is None
    sim.faults.rate = 0.0
    assert _read(sim, 0, 62) is not None


def test_a_shared_config_does_not_share_its_fault_plan() -> None:
    config = SimulatorConfig(seed=1)
    one, two = SimulatedBalancer(config), SimulatedBalancer(config)
    one.faults.rate = 1.0
    assert two.faults.rate == 0.0
    assert config.faults.rate == 0.0


def test_response_delay() -> None:
    sim = _sim(response_delay=0.25)
    (reply,) = sim.receive(ReadRequest(0, 1).encode())
    assert reply.delay == 0.25


# --- A5 ---------------------------------------------------------------------------------------


def _a5(sim: SimulatedBalancer, command: int) -> list[a5.A5Frame]:
    data = _send(sim, a5.build_request(command).encode())
    frames = FrameStream(a5.A5Framing()).feed(data)
    assert b"".join(f.encode() for f in frames) == data  # nothing but whole, valid frames
    assert all(f.address == 0x01 and f.command == command for f in frames)
    return frames


def test_a5_answers_from_the_same_module() -> None:
    sim = _sim(cells=8, protocols=frozenset({"d2", "a5"}))
    sim.set_cell_voltage(8, 3.4)
    # 0x95: frame number + three cells (mV, big-endian) per frame (reference §3.2).
    frames = _a5(sim, 0x95)
    assert [f.data[0] for f in frames] == [1, 2, 3]
    cells = [mv / 1000 for f in frames for mv in struct.unpack(">3H", f.data[1:7])]
    assert tuple(cells[:8]) == sim.cell_voltages()
    # 0x90: pack voltage in 0.1 V.
    (pack,) = _a5(sim, 0x90)
    assert struct.unpack(">H", pack.data[:2])[0] / 10 == sim.value("pack_voltage")
    # 0x94: cell and sensor counts.
    (counts,) = _a5(sim, 0x94)
    assert counts.data[:2] == bytes((8, 1))
    # 0x97: balancing bits, cell 1 = bit 0 of byte 0.
    (bits,) = _a5(sim, 0x97)
    lowest = sim.cell_voltages().index(min(sim.cell_voltages()))
    assert int.from_bytes(bits.data[:6], "little") == 1 << 7 | 1 << lowest
    # 0x5F: balance start voltage and difference (mV).
    (thresholds,) = _a5(sim, 0x5F)
    assert struct.unpack(">HH", thresholds.data[:4]) == (3300, 20)
    # D2 still works on the same module, and a frame from a module (address 0x01) is no request.
    assert _read(sim, 0xCC, 5) is not None
    assert sim.receive(a5.A5Frame(0x01, 0x90).encode()) == []


# --- servers ----------------------------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _read_exactly(reader: asyncio.StreamReader, count: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(count), 5)


@pytest.mark.usefixtures("socket_enabled")
async def test_tcp_server_answers_real_sockets() -> None:
    sim = _sim()
    server = await serve_tcp(sim)
    try:
        assert server.url == f"socket://127.0.0.1:{server.port}"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        other_reader, other_writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(ReadRequest(0, 62).encode())
        data = await _read_exactly(reader, 129)
        assert _responses(data) == [ReadResponse(tuple(sim.words[0:62]))]
        request = WriteSingle(BY_KEY["balancer_enabled"].address, 0).encode()
        other_writer.write(request)
        assert await _read_exactly(other_reader, 8) == request
        assert sim.value("balancer_enabled") is False
        assert server.connections == 2
        other_writer.close()
        await other_writer.wait_closed()
        for _ in range(100):
            if server.connections == 1:
                break
            await asyncio.sleep(0.01)
        assert server.connections == 1
    finally:
        await server.close()
    assert server.connections == 0
    assert await reader.read() == b""  # the server closed the connection
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)


@pytest.mark.usefixtures("socket_enabled")
async def test_tcp_server_honours_split_and_delay() -> None:
    sim = _sim(faults=FaultPlan(rate=1.0, kinds=(Fault.SPLIT,), seed=2))
    server = await serve_tcp(sim)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        writer.write(ReadRequest(0, 62).encode())
        data = await _read_exactly(reader, 129)
        assert _responses(data) == [ReadResponse(tuple(sim.words[0:62]))]
        assert time.monotonic() - started >= 0.02 * 0.9  # at least one pause between chunks
        sim.faults = FaultPlan(rate=1.0, kinds=(Fault.DELAY,), delay=0.3)
        started = time.monotonic()
        writer.write(ReadRequest(0xCC, 5).encode())
        await _read_exactly(reader, 15)
        assert time.monotonic() - started >= 0.3 * 0.9
        writer.close()
    finally:
        await server.close()


@pytest.mark.usefixtures("socket_enabled")
async def test_tcp_pacing_takes_the_wire_time() -> None:
    sim = _sim(pace_baud=9600)
    server = await serve_tcp(sim)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        writer.write(ReadRequest(0, 62).encode())
        await _read_exactly(reader, 129)
        wire = (8 + 129) * 10 / 9600  # 142.7 ms
        assert time.monotonic() - started >= wire * 0.9
        writer.close()
    finally:
        await server.close()


@pytest.fixture
def pty_fd() -> Iterator[list[int]]:
    fds: list[int] = []
    yield fds
    for fd in fds:
        os.close(fd)


def _open_pty(path: str, fds: list[int]) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    fds.append(fd)
    tty.setraw(fd)
    return fd


async def _pty_read(fd: int, count: int, timeout: float = 5) -> bytes:
    """Read ``count`` bytes from a non-blocking fd through the event loop."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        async with asyncio.timeout(timeout):
            while len(data) < count:
                await ready.wait()
                ready.clear()
                try:
                    chunk = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                data += chunk
    finally:
        loop.remove_reader(fd)
    return bytes(data)


async def test_pty_server_answers_through_a_real_terminal(pty_fd: list[int]) -> None:
    sim = _sim()
    server = await serve_pty(sim)
    try:
        assert server.path is not None and server.url == server.path
        assert server.path.startswith("/dev/")
        fd = _open_pty(server.path, pty_fd)
        os.write(fd, ReadRequest(0, 62).encode())
        data = await _pty_read(fd, 129)
        assert _responses(data) == [ReadResponse(tuple(sim.words[0:62]))]
        request = WriteSingle(BY_KEY["balance_start_voltage"].address, 3450).encode()
        os.write(fd, request)
        assert await _pty_read(fd, 8) == request
        assert sim.value("balance_start_voltage") == 3.45
        # The host may close and reopen the port: the server still answers.
        os.close(pty_fd.pop())
        fd = _open_pty(server.path, pty_fd)
        os.write(fd, ReadRequest(0xCC, 5).encode())
        assert len(await _pty_read(fd, 15)) == 15
    finally:
        await server.close()


async def test_pty_pacing_takes_the_wire_time(pty_fd: list[int]) -> None:
    sim = _sim(pace_baud=9600)
    server = await serve_pty(sim)
    try:
        assert server.path is not None
        fd = _open_pty(server.path, pty_fd)
        started = time.monotonic()
        os.write(fd, ReadRequest(0, 62).encode())
        data = await _pty_read(fd, 129)
        elapsed = time.monotonic() - started
        assert _responses(data)
        assert elapsed >= (8 + 129) * 10 / 9600 * 0.9  # ≈ 142.7 ms on a real 9600 baud line
    finally:
        await server.close()


async def test_servers_leave_no_descriptor_behind(pty_fd: list[int], socket_enabled: None) -> None:
    warm = await serve_pty(_sim())  # the event loop creates what it needs lazily, once
    await warm.close()
    before = _open_fds()
    for _ in range(3):
        sim = _sim()
        server = await serve_pty(sim)
        assert server.path is not None
        fd = _open_pty(server.path, pty_fd)
        os.write(fd, ReadRequest(0xCC, 5).encode())
        await _pty_read(fd, 15)
        os.close(pty_fd.pop())
        await server.close()
        await server.close()  # idempotent
        tcp = await serve_tcp(sim)
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp.port)
        writer.write(ReadRequest(0xCC, 5).encode())
        await _read_exactly(reader, 15)
        writer.close()
        await writer.wait_closed()
        await tcp.close()
    assert _open_fds() == before
    assert not [t for t in asyncio.all_tasks() if "_Link._send" in repr(t.get_coro())]
