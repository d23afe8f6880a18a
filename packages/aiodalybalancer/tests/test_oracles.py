"""Independent oracles: decoded values against numbers worked out by hand, never through the table.

Every register the product decodes is checked here at least once against a literal: from a real
frame where one exists (the balancer capture, and two public DALY BMS frames copied into
tests/vectors/daly_bms_frames.json with their source line), otherwise from a frame
composed by hand in the test. The arithmetic behind each literal is written beside it. Fault bit
names, absent markers, write limits at their exact edges and the frame layouts' limits likewise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aiodalybalancer.errors import FrameError, ValueOutOfRangeError
from aiodalybalancer.frames import (
    Direction,
    ExceptionResponse,
    ReadRequest,
    ReadResponse,
    WriteMultiple,
    WriteMultipleAck,
    WriteSingle,
    crc_ok,
    frame_length,
    parse,
)
from aiodalybalancer.models import Identity, Settings, Status
from aiodalybalancer.registers import (
    BALANCER,
    BY_KEY,
    CHEMISTRY,
    EXTENDED,
    IDENTITY,
    LIVE,
    MIN_PACK_VOLTAGE,
    MIN_PACK_VOLTAGE_DUAL_UART,
    PASSWORD,
    SETTINGS,
    SLEEP_DEFAULT,
    SLEEP_NEVER,
    WARNING_BITS,
    BatteryType,
    Block,
    Chemistry,
    Confidence,
    Kind,
    Register,
    active_faults,
    balance_voltage_range,
    chemistry_of,
    register,
)

from .reference import crc16_bitwise

BMS_FRAMES = json.loads((Path(__file__).resolve().parent / "vectors" / "daly_bms_frames.json").read_text())


def _words(hex_frame: str) -> tuple[int, ...]:
    """The register words of a real read response (parse checks its address, length and CRC)."""
    frame = parse(bytes.fromhex(hex_frame), Direction.RESPONSE)
    assert isinstance(frame, ReadResponse)
    return frame.values


def _framed(body_hex: str) -> bytes:
    """``body`` with its CRC-16/MODBUS, computed bit by bit (its definition, not the project's)."""
    body = bytes.fromhex(body_hex)
    return body + crc16_bitwise(body).to_bytes(2, "little")


def _reply(words: list[int]) -> tuple[int, ...]:
    """A read response composed by hand from ``words``, sent through the real parser."""
    return _words(_framed(f"d203{2 * len(words):02x}" + "".join(f"{w:04x}" for w in words)).hex())


def _block(block: Block, words: dict[int, int]) -> tuple[int, ...]:
    """A block's words, zero except at the given absolute addresses."""
    assert all(block.start <= address < block.start + block.count for address in words)
    return _reply([words.get(address, 0) for address in range(block.start, block.start + block.count)])


def _capture_reply(capture: dict[str, Any], request: str) -> tuple[int, ...]:
    return _words(next(r for r in capture["responses"] if r["request"] == request)["hex"])


# --- the live block -----------------------------------------------------------------------------

ZERO_CELLS = (0.0,) * 8


def test_captured_balancer_live_block(capture: dict[str, Any]) -> None:
    """The 16S balancer: every register of the live block, worked out from its bytes."""
    decoded = LIVE.decode(_capture_reply(capture, "d2030000003ed7b9"))
    assert decoded == {
        # 0x0D07 = 3335 mV, 0x0D06 = 3334, 0x0D05 = 3333, 0x0D08 = 3336, 0x0D09 = 3337, 0x0D0A = 3338
        "cell_voltages": (3.335, 3.334, 3.335, 3.333, 3.336, 3.337, 3.336, 3.337)
        + (3.337, 3.336, 3.338, 3.336, 3.334, 3.338, 3.336, 3.336)
        + (0.0,) * 16,
        # 0x44 = 68 → 68 − 40 = 28 °C; empty slots 0 → −40; slots 7/8 hold 0x0215 = 533, 0x0D07 = 3335
        # Raw 0 in a temperature slot is an empty slot (the capture's slots 2–6), never −40 °C.
        "temperatures": (28, None, None, None, None, None, 493, 3295),
        "pack_voltage": 53.3,  # 0x0215 = 533 × 0.1 V
        "current": 0.0,  # 0x7530 = 30000, the zero of the offset
        "soc": 0.0,
        "max_cell_voltage": 3.338,  # 0x0D0A
        "min_cell_voltage": 3.332,  # 0x0D04 = 3332
        "max_temperature": 28,
        "min_temperature": 28,
        "state": "idle",
        "remaining_capacity": 0.0,
        "cell_count": 16,  # 0x10
        "temperature_sensor_count": 1,
        "cycles": 0,
        "balancing": False,
        "charge_mos": False,
        "discharge_mos": False,
        "average_cell_voltage": 3.335,  # 0x0D07
        "cell_delta": 0.006,  # 6 mV
        "power": 0,
        "faults": (0, 0, 0, 0),
    }


def test_public_24_cell_bms_frame() -> None:
    """A 24S DALY BMS (esphome-daly-bms docs/pdus/daly_bms_24cells.txt:2)."""
    decoded = LIVE.decode(_words(BMS_FRAMES["bms_24_cells"]["hex"]))
    # 0x0CDC = 3292 mV, 0x0CDB = 3291, 0x0CDE = 3294
    cells = [3.292] * 24
    cells[1] = 3.291
    cells[6] = cells[14] = cells[21] = 3.294
    assert decoded == {
        "cell_voltages": (*cells, *ZERO_CELLS),
        "temperatures": (16, 14, 16, 16, None, None, None, None),  # 0x38 = 56 − 40; raw 0: no sensor
        "pack_voltage": 79.0,  # 0x0316 = 790
        "current": 0.0,  # 0x7530
        "soc": 33.3,  # 0x014D = 333
        "max_cell_voltage": 3.294,
        "min_cell_voltage": 3.291,
        "max_temperature": 16,
        "min_temperature": 14,
        "state": "idle",
        "remaining_capacity": 104.5,  # 0x0415 = 1045
        "cell_count": 24,  # 0x18
        "temperature_sensor_count": 4,
        "cycles": 0,
        "balancing": False,
        "charge_mos": True,
        "discharge_mos": True,
        "average_cell_voltage": 3.292,
        "cell_delta": 0.003,
        "power": 0,
        "faults": (0, 0, 0, 0),
    }
    # Flags decode to booleans, not to the raw 0/1.
    assert [type(decoded[key]) for key in ("balancing", "charge_mos", "discharge_mos")] == [bool, bool, bool]
    status = Status.from_d2(decoded, None, None)
    assert status.cell_count == 24
    assert status.cell_voltages == tuple(cells)
    assert status.temperatures == (16.0, 14.0, 16.0, 16.0)
    assert (status.max_cell, status.min_cell) == (7, 2)


def test_public_80_register_bms_frame() -> None:
    """An 80-register answer (live + extended block) of a DALY BMS (…blue_series_80_registers.txt:2)."""
    # 160 bytes: more than the 62 registers this product ever asks for, so its parser refuses the
    # frame; the words are taken here by hand, after the CRC is checked by its definition.
    frame = bytes.fromhex(BMS_FRAMES["bms_80_registers"]["hex"])
    assert _framed(frame[:-2].hex()) == frame
    with pytest.raises(FrameError, match="byte count 160 impossible"):
        parse(frame, Direction.RESPONSE)
    words = tuple(frame[i] << 8 | frame[i + 1] for i in range(3, 3 + frame[2], 2))
    assert len(words) == 80
    live = LIVE.decode(words[:62])
    extended = EXTENDED.decode(words[0x3E : 0x3E + 9])
    # 0x0CD1 = 3281 mV, 0x0CD2 = 3282, 0x0CD3 = 3283
    assert live["cell_voltages"] == (3.281, 3.282, 3.283, 3.283, 3.283, 3.282, *(3.283,) * 10, *(0.0,) * 16)
    assert live["temperatures"] == (13, 13, 13, 13, None, None, None, None)  # 0x35 = 53 − 40; raw 0: none
    assert live["pack_voltage"] == 52.5  # 0x020D = 525
    assert live["current"] == -2.5  # 0x7517 = 29975: (29975 − 30000) × 0.1, discharging
    assert live["soc"] == 56.1  # 0x0231 = 561
    assert (live["max_cell_voltage"], live["min_cell_voltage"]) == (3.283, 3.281)
    assert (live["max_temperature"], live["min_temperature"]) == (13, 13)
    assert live["state"] == "discharge"  # 2
    assert live["remaining_capacity"] == 117.8  # 0x049A = 1178
    assert (live["cell_count"], live["temperature_sensor_count"]) == (16, 4)
    assert live["cycles"] == 60  # 0x3C
    assert (live["balancing"], live["charge_mos"], live["discharge_mos"]) == (False, True, True)
    assert live["average_cell_voltage"] == 3.282
    assert live["cell_delta"] == 0.002
    assert live["power"] == 131  # 0x83
    assert live["faults"] == (0, 0, 0, 0)
    assert extended == {
        "balancing_cells": (0, 0),
        "balance_current": 0.0,  # 0x7530
        "mos_temperature": 15,  # 0x37 = 55 − 40
        "board_temperature": None,  # 0: no sensor
    }
    status = Status.from_d2(live, extended, None)
    assert status.current == -2.5
    assert status.mos_temperature == 15.0
    assert status.board_temperature is None
    assert status.balancing_cells == (False,) * 16


def test_hand_made_live_block() -> None:
    """Values the real frames never show: charging, balancing, faults, 32 cells, odd slots."""
    words = {address: 3000 + address for address in range(32)}  # cell n: 3.000 + (n − 1) mV
    words |= {0x20: 0, 0x21: 1, 0x22: 39, 0x23: 40, 0x24: 41, 0x25: 0xFFFE}  # −40, −39, −1, 0, 1, 65494 °C
    words |= {
        0x28: 0xFFFE,  # 6553.4 V: the largest value short of the absent marker
        0x29: 30125,  # +12.5 A: charging
        0x2A: 1000,  # 100.0 %
        0x2B: 3031,
        0x2C: 3000,
        0x2D: 100,  # 60 °C
        0x2E: 0,  # −40 °C
        0x2F: 1,  # charge
        0x30: 2345,  # 234.5 Ah
        0x31: 32,
        0x32: 7,
        0x33: 65534,
        0x34: 1,  # balancing
        0x35: 2,  # any non-zero value is on
        0x37: 3015,
        0x38: 31,
        0x39: 1234,
        0x3A: 0x0001,
        0x3B: 0x8000,
        0x3C: 0x0300,
        0x3D: 0x0020,
    }
    decoded = LIVE.decode(_block(LIVE, words))
    assert decoded["cell_voltages"][:3] == (3.0, 3.001, 3.002)
    assert decoded["cell_voltages"][31] == 3.031
    assert decoded["temperatures"][:6] == (None, -39, -1, 0, 1, 65494)  # raw 0 = no sensor, not −40 °C
    assert decoded["pack_voltage"] == 6553.4
    assert decoded["current"] == 12.5
    assert decoded["soc"] == 100.0
    assert (decoded["max_cell_voltage"], decoded["min_cell_voltage"]) == (3.031, 3.0)
    assert (decoded["max_temperature"], decoded["min_temperature"]) == (60, -40)
    assert decoded["state"] == "charge"
    assert decoded["remaining_capacity"] == 234.5
    assert (decoded["cell_count"], decoded["temperature_sensor_count"], decoded["cycles"]) == (32, 7, 65534)
    assert (decoded["balancing"], decoded["charge_mos"], decoded["discharge_mos"]) == (True, True, False)
    assert decoded["average_cell_voltage"] == 3.015
    assert decoded["cell_delta"] == 0.031
    assert decoded["power"] == 1234
    assert decoded["faults"] == (0x0001, 0x8000, 0x0300, 0x0020)
    # 32 cells is more than the module's 24: the first 24 slots that carry a voltage count instead;
    # 7 sensors is more than slots 1–6 can hold: the slots up to the last one with a value show.
    status = Status.from_d2(decoded, None, None)
    assert status.cell_count == 24
    assert status.temperatures == (None, -39.0, -1.0, 0.0, 1.0, 65494.0)
    assert status.faults == (0x0001, 0x8000, 0x0300, 0x0020)


@pytest.mark.parametrize(("raw", "state"), [(0, "idle"), (1, "charge"), (2, "discharge"), (3, None), (0xFFFF, None)])
def test_charge_state_names(raw: int, state: str | None) -> None:
    assert LIVE.decode(_block(LIVE, {0x2F: raw}))["state"] == state


@pytest.mark.parametrize(("count", "expected"), [(0, 2), (1, 1), (24, 24), (25, 2)])
def test_cell_count_limit(count: int, expected: int) -> None:
    """24 cells at most: a count outside 1..24 falls back to the cells that carry a voltage (2)."""
    status = Status.from_d2(LIVE.decode(_block(LIVE, {0x00: 3300, 0x01: 3301, 0x31: count})), None, None)
    assert status.cell_count == expected
    assert status.cell_voltages == (3.3, 3.301)[:expected] + (0.0,) * max(0, expected - 2)


@pytest.mark.parametrize(("sensors", "expected"), [(0, ()), (1, (20.0,)), (6, (20.0, 21.0, 22.0, 23.0, 24.0, 25.0))])
def test_temperature_sensor_count_limit(sensors: int, expected: tuple[float, ...]) -> None:
    words = {0x20 + i: 60 + i for i in range(8)} | {0x32: sensors}
    assert Status.from_d2(LIVE.decode(_block(LIVE, words)), None, None).temperatures == expected


def test_every_temperature_slot_present() -> None:
    """All eight slots carry a reading (no raw 0, no marker): the one-pass decode of the array."""
    words = {0x20: 65, 0x21: 1, 0x22: 39, 0x23: 40, 0x24: 41, 0x25: 100, 0x26: 0xFFFE, 0x27: 80}
    # raw − 40: 25, −39, −1, 0, 1, 60, 65494, 40 °C
    temperatures = LIVE.decode(_block(LIVE, words))["temperatures"]
    assert temperatures == (25, -39, -1, 0, 1, 60, 65494, 40)
    assert all(type(t) is int for t in temperatures)


# --- the extended block --------------------------------------------------------------------------


def test_hand_made_extended_block() -> None:
    words = {
        0x3E: 0b1000_0000_0000_0101,  # cells 1, 3 and 16
        0x3F: 0b0000_0000_1000_0001,  # cells 17 and 24 (bit 7 of the second word)
        0x40: 31234,  # (31234 − 30000) × 0.001 = +1.234 A
        0x42: 65,  # 25 °C
        0x43: 70,  # 30 °C
    }
    extended = EXTENDED.decode(_block(EXTENDED, words))
    assert extended == {
        "balancing_cells": (0x8005, 0x0081),
        "balance_current": 1.234,
        "mos_temperature": 25,
        "board_temperature": 30,
    }
    live = LIVE.decode(_block(LIVE, {0x31: 24}))
    status = Status.from_d2(live, extended, None)
    assert status.balancing_cells is not None
    assert [n + 1 for n, on in enumerate(status.balancing_cells) if on] == [1, 3, 16, 17, 24]
    assert (status.balance_current, status.mos_temperature, status.board_temperature) == (1.234, 25.0, 30.0)
    negative = EXTENDED.decode(_block(EXTENDED, {0x40: 29500, 0x42: 40, 0x43: 39}))
    assert (negative["balance_current"], negative["mos_temperature"], negative["board_temperature"]) == (-0.5, 0, -1)


@pytest.mark.parametrize(
    ("address", "key", "raw", "value"),
    [
        # The absent marker 0xFFFF, and the raw 0 of the temperatures that use it for "no sensor".
        (0x40, "balance_current", 0xFFFF, None),
        (0x40, "balance_current", 0, -30.0),  # (0 − 30000) × 0.001: 0 is a value here
        (0x42, "mos_temperature", 0xFFFF, None),
        (0x42, "mos_temperature", 0, None),
        (0x42, "mos_temperature", 1, -39),
        (0x42, "mos_temperature", 0xFFFE, 65494),
        (0x43, "board_temperature", 0xFFFF, None),
        (0x43, "board_temperature", 0, None),
        (0x43, "board_temperature", 1, -39),
    ],
)
def test_absent_markers_of_the_extended_block(address: int, key: str, raw: int, value: float | None) -> None:
    assert EXTENDED.decode(_block(EXTENDED, {address: raw}))[key] == value


# --- settings ------------------------------------------------------------------------------------


def test_captured_settings_block(capture: dict[str, Any]) -> None:
    decoded = SETTINGS.decode(_capture_reply(capture, "d20300800029965f"))
    assert decoded == {
        "rated_capacity": 50.0,  # 0x01F4 = 500 × 0.1 Ah
        "cell_reference_voltage": 3.2,  # 0x0C80 = 3200 mV
        "board_count": 1,
        "string_count": 16,  # 0x0010
        "temperature_sensor_setting": 1,
        "battery_type": "lifepo4",  # 0
        "sleep_time": 65535,  # 0xFFFF: never
        "cell_overvoltage_warning": 3.55,  # 0x0DDE = 3550
        "cell_overvoltage_alarm": 3.65,  # 0x0E42 = 3650
        "cell_undervoltage_warning": 2.3,  # 0x08FC = 2300
        "cell_undervoltage_alarm": 2.2,  # 0x0898 = 2200
        "cell_delta_warning": 0.0,
        "cell_delta_alarm": 0.0,
        "balance_start_voltage": 3.2,  # 0x0C80 at 0x00A3
        "balance_start_delta": 0.02,  # 0x0014 = 20 mV at 0x00A4
    }


def test_hand_made_settings_block() -> None:
    """Every setting with a value of its own (the capture has zero differences, LiFePO4, never)."""
    words = {
        0x80: 1000,  # 100.0 Ah
        0x81: 3300,  # 3.3 V
        0x82: 2,
        0x83: 24,
        0x86: 3,
        0x89: 1,  # Li-ion
        0x8A: 3600,  # s
        0x8B: 4200,
        0x8C: 4300,
        0x8D: 3000,
        0x8E: 2800,
        0x9F: 300,  # 0.3 V difference warning
        0xA0: 500,  # 0.5 V difference alarm
        0xA3: 3500,
        0xA4: 30,
    }
    settings = Settings.from_decoded(SETTINGS.decode(_block(SETTINGS, words)))
    assert settings == Settings(
        string_count=24,
        battery_type="li_ion",
        sleep_time=3600,
        balance_start_voltage=3.5,
        balance_start_delta=0.03,
        rated_capacity=100.0,
        cell_reference_voltage=3.3,
        cell_overvoltage_warning=4.2,
        cell_overvoltage_alarm=4.3,
        cell_undervoltage_warning=3.0,
        cell_undervoltage_alarm=2.8,
        cell_delta_warning=0.3,
        cell_delta_alarm=0.5,
    )
    decoded = SETTINGS.decode(_block(SETTINGS, words))
    assert (decoded["board_count"], decoded["temperature_sensor_setting"]) == (2, 3)
    assert SETTINGS.decode(_block(SETTINGS, {0x89: 2}))["battery_type"] == "lto"
    assert SETTINGS.decode(_block(SETTINGS, {0x89: 3}))["battery_type"] is None


# --- identity, password, balancer block -----------------------------------------------------------


def test_captured_identity_and_password(capture: dict[str, Any]) -> None:
    identity = IDENTITY.decode(_capture_reply(capture, "d20300a900208791"))
    password = PASSWORD.decode(_capture_reply(capture, "d20300c90003c656"))
    # "B002_111132_03" = 42 30 30 32 5f …; "E303-032DG-SMB" = 45 33 30 33 …; serial all NUL
    assert identity == {"software_version": "B002_111132_03", "hardware_version": "E303-032DG-SMB", "serial_number": ""}
    assert password == {"password": "123456"}  # 31 32 33 34 35 36


def _ascii_words(text: bytes, count: int) -> list[int]:
    padded = text.ljust(2 * count, b"\x00")
    return [padded[i] << 8 | padded[i + 1] for i in range(0, 2 * count, 2)]


def test_hand_made_identity_block() -> None:
    """Text ends at the first NUL and loses surrounding blanks; a serial number fills 32 bytes."""
    words = [*_ascii_words(b" V1.2 \x00junk", 8), *_ascii_words(b"HW", 8), *_ascii_words(b"S" * 32, 16)]
    decoded = IDENTITY.decode(_reply(words))
    assert decoded == {"software_version": "V1.2", "hardware_version": "HW", "serial_number": "S" * 32}
    assert PASSWORD.decode(_reply(_ascii_words(b"654321", 3))) == {"password": "654321"}


def test_captured_balancer_block(capture: dict[str, Any]) -> None:
    decoded = BALANCER.decode(_capture_reply(capture, "d20300cc00055655"))
    # 0x0001 0x0100: year 0x00, month 0x01, day 0x01 → 2000-01-01 (the unset date)
    assert decoded == {
        "production_date": "2000-01-01",
        "register_00ce": 16,
        "balancer_enabled": True,
        "register_00d0": 10,
    }


def test_hand_made_balancer_block() -> None:
    # 0x18 0x0B 0x07 0x00: 2024-11-07
    decoded = BALANCER.decode(_reply([0x180B, 0x0700, 24, 0, 20]))
    assert decoded == {
        "production_date": "2024-11-07",
        "register_00ce": 24,
        "balancer_enabled": False,
        "register_00d0": 20,
    }
    identity = Identity.from_decoded(decoded)
    assert identity.production_date == "2024-11-07"
    assert BALANCER.decode(_reply([0, 0, 0, 0xFFFF, 0]))["balancer_enabled"] is None
    assert BALANCER.decode(_reply([0, 0, 0, 2, 0]))["balancer_enabled"] is True


@pytest.mark.parametrize(
    ("words", "date"),
    [
        ((0x630C, 0x1F00), "2099-12-31"),  # 99, 12, 31: the last valid day
        ((0x0A01, 0x1FFF), "2010-01-31"),  # the low byte of the second word is not part of it
        ((0xFF0C, 0x0100), "2255-12-01"),
        ((0x1800, 0x0100), None),  # month 0
        ((0x180D, 0x0100), None),  # month 13
        ((0x1801, 0x0000), None),  # day 0
        ((0x1801, 0x2000), None),  # day 32
        ((0xFFFF, 0xFFFF), None),  # never programmed
    ],
)
def test_production_date(words: tuple[int, int], date: str | None) -> None:
    assert BALANCER.decode(_reply([*words, 0, 1, 0]))["production_date"] == date


# --- blocks, constants and the chemistry table ----------------------------------------------------


@pytest.mark.parametrize(
    ("block", "wire"),
    [
        (LIVE, "d2030000003ed7b9"),
        (EXTENDED, "d203003e0009f7a3"),
        (SETTINGS, "d20300800029965f"),
        (IDENTITY, "d20300a900208791"),
        (PASSWORD, "d20300c90003c656"),
        (BALANCER, "d20300cc00055655"),
    ],
)
def test_blocks_are_read_as_the_app_reads_them(block: Block, wire: str) -> None:
    """The blocks' start and size are the DALY app's own wires, byte for byte."""
    assert ReadRequest(block.start, block.count).encode().hex() == wire


def test_chemistry_facts() -> None:
    """Seed manual's wiring check ranges (with a margin) and balance turn-on ranges, per chemistry."""
    assert CHEMISTRY[BatteryType.LIFEPO4] == Chemistry(2.0, 3.8, 2.8, 3.65)
    assert CHEMISTRY[BatteryType.LI_ION] == Chemistry(2.5, 4.3, 3.0, 4.2)
    assert CHEMISTRY[BatteryType.LTO] == Chemistry(1.5, 2.9, 1.8, 2.8)
    assert balance_voltage_range("lifepo4") == (2.8, 3.65)
    assert balance_voltage_range("lead_acid") == (1.8, 4.2)
    # The manual's precaution 6: "battery packs lower than 2V" (1.5 V for the Dual UART model).
    assert MIN_PACK_VOLTAGE == 2.0
    assert MIN_PACK_VOLTAGE_DUAL_UART == 1.5


@pytest.mark.parametrize(
    ("battery_type", "chemistry"),
    [
        ("lifepo4", BatteryType.LIFEPO4),
        ("li_ion", BatteryType.LI_ION),
        ("lto", BatteryType.LTO),
        (BatteryType.LTO, BatteryType.LTO),
        (None, BatteryType.LIFEPO4),  # not read yet
        ("", BatteryType.LIFEPO4),
        ("lead_acid", BatteryType.LIFEPO4),  # a raw value outside the table
    ],
)
def test_chemistry_of_a_battery_type(battery_type: str | None, chemistry: BatteryType) -> None:
    assert chemistry_of(battery_type) is chemistry


def test_register_units_and_flags() -> None:
    """What Home Assistant shows next to each value, and what may be written or shown at all."""
    units = {
        "V": {"cell_voltages", "pack_voltage", "max_cell_voltage", "min_cell_voltage", "average_cell_voltage"}
        | {"cell_delta", "cell_reference_voltage", "cell_overvoltage_warning", "cell_overvoltage_alarm"}
        | {"cell_undervoltage_warning", "cell_undervoltage_alarm", "cell_delta_warning", "cell_delta_alarm"}
        | {"balance_start_voltage", "balance_start_delta"},
        "°C": {"temperatures", "max_temperature", "min_temperature", "mos_temperature", "board_temperature"},
        "A": {"current", "balance_current"},
        "%": {"soc"},
        "Ah": {"remaining_capacity", "rated_capacity"},
        "W": {"power"},
        "s": {"sleep_time"},
    }
    for unit, keys in units.items():
        for key in keys:
            assert BY_KEY[key].unit == unit, key
    with_unit = set().union(*units.values())
    assert {key for key, reg in BY_KEY.items() if reg.unit is not None} == with_unit
    writable = {"string_count", "battery_type", "sleep_time", "balance_start_voltage", "balance_start_delta"}
    assert {key for key, reg in BY_KEY.items() if reg.writable} == writable | {"balancer_enabled"}
    assert {key for key, reg in BY_KEY.items() if reg.secret} == {"password"}
    steps = {key: reg.step for key, reg in BY_KEY.items() if reg.writable}
    assert steps == {
        "string_count": 1,
        "battery_type": None,
        "sleep_time": 1,
        "balance_start_voltage": 0.001,
        "balance_start_delta": 0.001,
        "balancer_enabled": None,
    }
    assert dict(BY_KEY["sleep_time"].special) == {65535: "never"}


def test_display_precision_follows_the_scale() -> None:
    """Home Assistant shows as many decimals as the scale gives (1 mV → 3, 0.1 V → 1, 1 °C → 0)."""
    decimals = {key: register(key).decimals for key in ("cell_voltages", "pack_voltage", "temperatures", "cycles")}
    assert decimals == {"cell_voltages": 3, "pack_voltage": 1, "temperatures": 0, "cycles": 0}
    assert register("soc") is BY_KEY["soc"]
    assert (register("faults").address, register("faults").end) == (0x3A, 0x3E)
    assert (LIVE.end, EXTENDED.end, SETTINGS.end, IDENTITY.end, PASSWORD.end, BALANCER.end) == (
        0x3E,
        0x47,
        0xA9,
        0xC9,
        0xCC,
        0xD1,
    )


# --- write limits at their exact edges ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "raw"),
    [
        ("balance_start_voltage", 1.8, 1800),
        ("balance_start_voltage", 4.2, 4200),
        ("balance_start_voltage", 3.2999999, 3300),  # float noise rounds to the step
        ("balance_start_delta", 0.005, 5),
        ("balance_start_delta", 0.5, 500),
        ("string_count", 3, 3),
        ("string_count", 24, 24),
        ("string_count", 2.6, 3),  # a number of cells is rounded to the step, like any value
        ("string_count", 24.5, 24),  # half to even
        ("balance_start_voltage", 1.7995, 1800),  # 1799.5 rounds to 1800 (half to even)
        ("balance_start_delta", 0.5005, 500),
        ("sleep_time", 10, 10),  # shorter: asleep again before a client's retry (SLEEP_MIN)
        ("sleep_time", 9.6, 10),
        ("sleep_time", 65534, 65534),
        ("sleep_time", 65535, 65535),  # never
        ("battery_type", "lifepo4", 0),
        ("battery_type", "li_ion", 1),
        ("battery_type", "lto", 2),
        ("balancer_enabled", True, 1),
        ("balancer_enabled", 1, 1),
        ("balancer_enabled", False, 0),
        ("balancer_enabled", 0, 0),
    ],
)
def test_write_limits_accept_the_edges(key: str, value: Any, raw: int) -> None:
    assert BY_KEY[key].encode(value) == raw


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("balance_start_voltage", 1.799),
        ("balance_start_voltage", 4.201),
        ("balance_start_delta", 0.004),
        ("balance_start_delta", 0.501),
        ("string_count", 2),
        ("string_count", 25),
        ("string_count", 2.5),  # rounds to 2 (half to even)
        ("balance_start_voltage", 1.7994),  # rounds to 1799 mV
        ("balance_start_voltage", 4.2006),  # rounds to 4201 mV
        ("balance_start_delta", 0.0045),  # 4.5 rounds to 4 mV (half to even)
        ("sleep_time", -1),
        ("sleep_time", 9),
        ("sleep_time", 9.4),  # rounds to 9
        ("sleep_time", 65536),
        ("sleep_time", float("nan")),
        ("sleep_time", float("inf")),
        ("sleep_time", "3600"),
        ("sleep_time", True),
        ("battery_type", "LiFePO4"),
        ("battery_type", 0),
        ("balancer_enabled", 2),
        ("balancer_enabled", "on"),
        ("cell_overvoltage_warning", 3.6),  # read-only
        ("register_00d0", 10),  # read-only
    ],
)
def test_write_limits_refuse_one_step_beyond(key: str, value: Any) -> None:
    with pytest.raises(ValueOutOfRangeError) as err:
        BY_KEY[key].encode(value)
    assert err.value.key == key


def test_an_offset_register_encodes_and_checks_its_range_in_raw_units() -> None:
    """No writable register has an offset today; one like the temperatures must still encode right."""
    setpoint = Register(
        key="setpoint",
        address=0x00F0,
        description="",
        confidence=Confidence.UNKNOWN,
        offset=40,
        unit="°C",
        writable=True,
        minimum=-10,
        maximum=60,
        step=1,
    )
    assert setpoint.encode(25) == 65  # 25 + 40
    assert setpoint.encode(-10) == 30
    assert setpoint.encode(60) == 100
    for beyond in (-11, 61):
        with pytest.raises(ValueOutOfRangeError):
            setpoint.encode(beyond)
    assert setpoint.decode_word(65) == 25


def _array(**fields: Any) -> Register:
    """A hand-made register array of three words at 0x00F0 (the table has none like it)."""
    return Register(key="array", address=0x00F0, count=3, description="", confidence=Confidence.UNKNOWN, **fields)


@pytest.mark.parametrize(
    ("fields", "words", "values"),
    [
        # Every word present: the one-pass branch. (raw − 30000) × 0.1
        ({"scale": 0.1, "offset": 30000}, [30125, 29500, 30000], (12.5, -50.0, 0.0)),
        ({"scale": 0.1, "offset": 30000}, [30125, 0xFFFF, 30000], (12.5, None, 0.0)),
        # raw − 40, the temperatures' rule
        ({"offset": 40}, [65, 1, 40], (25, -39, 0)),
        # A special value stays raw, the other words are scaled: 125 × 0.1, 0 × 0.1
        ({"scale": 0.1, "special": {0xFFFE: "no reading yet"}}, [125, 0xFFFE, 0], (12.5, 0xFFFE, 0.0)),
        # Flags: any non-zero word is on
        ({"kind": Kind.FLAG}, [0, 1, 2], (False, True, True)),
        ({"kind": Kind.BITS}, [0x8001, 0, 0xFFFE], (0x8001, 0, 0xFFFE)),
        ({"kind": Kind.ENUM, "options": ("off", "on")}, [1, 0, 2], ("on", "off", None)),
    ],
)
def test_register_arrays_decode_word_by_word(fields: dict[str, Any], words: list[int], values: tuple[Any, ...]) -> None:
    decoded = _array(**fields).decode(words)
    assert decoded == values
    assert [type(v) for v in decoded] == [type(v) for v in values]  # True is not 1, 12.5 is no int


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("pack_voltage", 532, 53.2),  # 532 × 0.1 V
        ("current", 30012, 1.2),  # (30012 − 30000) × 0.1 A
        ("current", 0xFFFF, None),
        ("max_temperature", 65, 25),  # 65 − 40 °C
        ("state", 1, "charge"),
        ("balancing", 2, True),
        ("cycles", 0, 0),
    ],
)
def test_one_word_registers_decode_through_decode(key: str, raw: int, value: object) -> None:
    """``Register.decode`` takes a register's words; for a one-word register, its one value."""
    decoded = register(key).decode([raw])
    assert decoded == value
    assert type(decoded) is type(value)


def test_refusals_say_the_allowed_range() -> None:
    with pytest.raises(ValueOutOfRangeError, match=r"allowed 1\.8 to 4\.2 V"):
        BY_KEY["balance_start_voltage"].encode(5)
    with pytest.raises(ValueOutOfRangeError, match=r"allowed 3 to 24$"):
        BY_KEY["string_count"].encode(30)
    with pytest.raises(ValueOutOfRangeError, match="expected one of lifepo4, li_ion, lto"):
        BY_KEY["battery_type"].encode("agm")


# --- fault bits ----------------------------------------------------------------------------------

FAULT_NAMES = (
    # word 0 (0x003A), bit 0 first
    "cell_overvoltage_1",
    "cell_overvoltage_2",
    "cell_undervoltage_1",
    "cell_undervoltage_2",
    "pack_overvoltage_1",
    "pack_overvoltage_2",
    "pack_undervoltage_1",
    "pack_undervoltage_2",
    "charge_overtemperature_1",
    "charge_overtemperature_2",
    "charge_undertemperature_1",
    "charge_undertemperature_2",
    "discharge_overtemperature_1",
    "discharge_overtemperature_2",
    "discharge_undertemperature_1",
    "discharge_undertemperature_2",
    # word 1 (0x003B)
    "charge_overcurrent_1",
    "charge_overcurrent_2",
    "discharge_overcurrent_1",
    "discharge_overcurrent_2",
    "soc_high_1",
    "soc_high_2",
    "soc_low_1",
    "soc_low_2",
    "cell_difference_1",
    "cell_difference_2",
    "temperature_difference_1",
    "temperature_difference_2",
    "fault_1_12",
    "fault_1_13",
    "fault_1_14",
    "fault_1_15",
    # word 2 (0x003C)
    "mos_charge_overtemperature",
    "mos_discharge_overtemperature",
    "mos_charge_sensor_fault",
    "mos_discharge_sensor_fault",
    "mos_charge_adhesion",
    "mos_discharge_adhesion",
    "mos_charge_circuit_fault",
    "mos_discharge_circuit_fault",
    "afe_chip_fault",
    "cell_sampling_offline",
    "temperature_sensor_fault",
    "eeprom_fault",
    "rtc_fault",
    "precharge_failed",
    "vehicle_communication_fault",
    "network_module_fault",
    # word 3 (0x003D)
    "current_module_fault",
    "pack_voltage_module_fault",
    "short_circuit_protection_fault",
    "low_voltage_charge_inhibit",
    "soft_switch_mos_off",
    "charging_cabinet_offline",
    *(f"fault_3_{bit}" for bit in range(6, 16)),
)


@pytest.mark.parametrize("bit", range(64))
def test_each_fault_bit_has_its_documented_name(bit: int) -> None:
    words = [0, 0, 0, 0]
    words[bit // 16] = 1 << (bit % 16)
    assert active_faults(words) == [FAULT_NAMES[bit]]


def test_active_faults_in_bit_order() -> None:
    assert active_faults([0, 0, 0, 0]) == []
    assert active_faults([0x8001, 0, 0x0100, 0]) == [
        "cell_overvoltage_1",
        "discharge_undertemperature_2",
        "afe_chip_fault",
    ]
    assert active_faults([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]) == list(FAULT_NAMES)
    assert active_faults([0, 0, 0, 0, 0x0003]) == ["fault_4_0", "fault_4_1"]  # a fifth word has no names


#: Per fault word, bit 0 first: W for a level-1 warning, F for anything else (a level-2 fault,
#: a protection, a hardware fault, an unnamed bit). Words 0 and 1 pair each warning with its
#: level-2 fault; words 2 and 3 hold no warnings.
WARNING_MAP = ("WFWFWFWFWFWFWFWF", "WFWFWFWFWFWFFFFF", "FFFFFFFFFFFFFFFF", "FFFFFFFFFFFFFFFF")


@pytest.mark.parametrize("bit", range(64))
def test_warnings_and_faults_bit_by_bit(bit: int) -> None:
    words = [0, 0, 0, 0]
    words[bit // 16] = 1 << (bit % 16)
    (name,) = active_faults(words)
    assert (name in WARNING_BITS) is (WARNING_MAP[bit // 16][bit % 16] == "W"), name


# --- frame layout limits -------------------------------------------------------------------------


def test_write_multiple_count_limits_and_unsigned_fields() -> None:
    """1..62 registers per write-multiple; address, count and values are unsigned 16-bit."""
    with pytest.raises(FrameError):
        WriteMultiple(0, ()).encode()
    one = WriteMultiple(0xFFFF, (0xFFFF,)).encode()
    assert one.hex()[:16] == "d210ffff0001ffff"
    assert parse(one, Direction.REQUEST) == WriteMultiple(0xFFFF, (0xFFFF,))
    most = WriteMultiple(0x8000, (0x8000,) * 62).encode()
    assert len(most) == 8 + 124
    assert most[:6].hex() == "d2108000003e"
    assert parse(most, Direction.REQUEST) == WriteMultiple(0x8000, (0x8000,) * 62)
    with pytest.raises(FrameError, match=r"write count 63 outside 1\.\.62"):
        WriteMultiple(0, (0,) * 63).encode()
    assert frame_length(bytes.fromhex("d2100000003e"), Direction.REQUEST) == 132
    assert frame_length(bytes.fromhex("d21000000001"), Direction.REQUEST) == 10
    # 0x0101 = 257 and 0x013E = 318: the high byte counts too (its low byte alone would fit).
    for count in ("0000", "003f", "0101", "013e", "8000", "ffff"):
        with pytest.raises(FrameError, match="write-multiple count"):
            frame_length(bytes.fromhex(f"d2100000{count}"), Direction.REQUEST)
    ack = WriteMultipleAck(0xFFFF, 0x8001).encode()
    assert ack.hex()[:12] == "d210ffff8001"
    assert parse(ack, Direction.RESPONSE) == WriteMultipleAck(0xFFFF, 0x8001)


def test_single_write_and_read_fields_are_unsigned() -> None:
    frame = WriteSingle(0xFFFF, 0xFFFF).encode()
    assert frame.hex()[:12] == "d206ffffffff"
    assert parse(frame, Direction.REQUEST) == WriteSingle(0xFFFF, 0xFFFF)
    assert ReadResponse((0xFFFF, 0x8000)).encode().hex()[:14] == "d20304ffff8000"
    assert parse(ReadResponse((0xFFFF, 0x8000)).encode(), Direction.RESPONSE) == ReadResponse((0xFFFF, 0x8000))
    assert ReadRequest(0xFFFF, 62).encode().hex()[:12] == "d203ffff003e"
    for bad in (-1, 0x10000):
        with pytest.raises(FrameError):
            WriteSingle(bad, 0).encode()
        with pytest.raises(FrameError):
            WriteSingle(0, bad).encode()
        with pytest.raises(FrameError):
            WriteMultiple(bad, (0,)).encode()
        with pytest.raises(FrameError):
            ReadRequest(bad, 1).encode()


def test_the_shortest_frame_a_crc_can_check() -> None:
    """One byte and its CRC (d2 3f 1d) is the least a CRC covers; a CRC alone covers nothing."""
    assert _framed("d2").hex() == "d23f1d"
    assert crc_ok(_framed("d2"))
    assert not crc_ok(_framed("d2")[:-1] + b"\x00")
    assert not crc_ok(_framed("")), "two bytes are only a CRC, with nothing to check"
    assert not crc_ok(b"")


@pytest.mark.parametrize(("byte_count", "length"), [(0, 5), (2, 7), (124, 129)])
def test_read_response_byte_counts_that_fit(byte_count: int, length: int) -> None:
    assert frame_length(bytes((0xD2, 0x03, byte_count)), Direction.RESPONSE) == length


@pytest.mark.parametrize("byte_count", [1, 3, 123, 125, 126, 186, 255])
def test_read_response_byte_counts_that_cannot_be(byte_count: int) -> None:
    """Odd counts, and more than 62 registers (124 bytes), start no frame."""
    with pytest.raises(FrameError, match=f"byte count {byte_count} impossible"):
        frame_length(bytes((0xD2, 0x03, byte_count)), Direction.RESPONSE)


def test_read_request_count_limits() -> None:
    assert parse(bytes.fromhex("d2030000003ed7b9"), Direction.REQUEST) == ReadRequest(0, 62)
    for count in (0, 63):
        body = f"d2030000{count:04x}"
        with pytest.raises(FrameError, match=f"read count {count} outside 1..62"):
            parse(_framed(body), Direction.REQUEST)
        with pytest.raises(FrameError, match=f"read count {count} outside 1..62"):
            ReadRequest(0, count).encode()


@pytest.mark.parametrize(("function", "exception"), [(0x83, 0x03), (0x86, 0x06), (0x90, 0x10)])
def test_exception_replies_of_the_three_functions(function: int, exception: int) -> None:
    frame = _framed(f"d2{function:02x}02")
    assert frame_length(frame, Direction.RESPONSE) == 5
    assert parse(frame, Direction.RESPONSE) == ExceptionResponse(exception, 0x02)
    assert ExceptionResponse(exception, 0x02).encode() == frame


@pytest.mark.parametrize("function", [0x80, 0x81, 0x82, 0x84, 0x85, 0x87, 0x8F, 0x91, 0xD2, 0xFF])
def test_exception_replies_for_unknown_functions_are_refused(function: int) -> None:
    with pytest.raises(FrameError, match=f"unknown response function 0x{function:02X}"):
        parse(_framed(f"d2{function:02x}02"), Direction.RESPONSE)


@pytest.mark.parametrize("function", [0x83, 0x86, 0x90, 0x04, 0x00])
def test_requests_are_never_exception_replies(function: int) -> None:
    with pytest.raises(FrameError, match=f"unknown request function 0x{function:02X}"):
        frame_length(bytes((0xD2, function, 0x02)), Direction.REQUEST)


def test_bit_fields_have_no_absent_marker() -> None:
    """0xFFFF in a bit field is every bit set (16 faults, 16 cells balancing), not "absent"."""
    live = LIVE.decode(_block(LIVE, {0x3A: 0xFFFF, 0x3B: 0x0000, 0x3C: 0xFFFF, 0x3D: 0x0001}))
    assert live["faults"] == (0xFFFF, 0x0000, 0xFFFF, 0x0001)
    extended = EXTENDED.decode(_block(EXTENDED, {0x3E: 0xFFFF, 0x3F: 0xFFFF}))
    assert extended["balancing_cells"] == (0xFFFF, 0xFFFF)


def test_the_manuals_sleep_time_default() -> None:
    """What "Never sleep" switched off writes back: the manual's factory setting, 3600 s (§5)."""
    assert SLEEP_DEFAULT == 3600
    assert SLEEP_NEVER == 65535
