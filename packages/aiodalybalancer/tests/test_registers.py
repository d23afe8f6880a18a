"""The register table decodes the captured frames to the values the capture documents."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest

from aiodalybalancer import registers
from aiodalybalancer.errors import ValueOutOfRangeError
from aiodalybalancer.frames import Direction, ReadResponse, parse
from aiodalybalancer.models import Identity, Settings, Status
from aiodalybalancer.registers import (
    BALANCER,
    BLOCKS,
    BY_KEY,
    IDENTITY,
    LIVE,
    PASSWORD,
    RAW_ABSENT,
    REGISTERS,
    SETTINGS,
    Confidence,
    balance_voltage_range,
)


def _response(capture: dict[str, Any], request: str) -> tuple[int, ...]:
    reply = next(r for r in capture["responses"] if r["request"] == request)
    frame = parse(bytes.fromhex(reply["hex"]), Direction.RESPONSE)
    assert isinstance(frame, ReadResponse)
    return frame.values


def _expect(capture: dict[str, Any], request: str) -> dict[str, Any]:
    reply = next(r for r in capture["responses"] if r["request"] == request)
    expect: dict[str, Any] = reply["expect"]
    return expect


def test_live_block_decodes_to_the_capture(capture: dict[str, Any]) -> None:
    request = "d2030000003ed7b9"
    expect = _expect(capture, request)
    decoded = LIVE.decode(_response(capture, request))
    # The registers decode to what the capture holds ...
    assert decoded["max_cell_voltage"] == expect["max_cell_voltage_v"] == 3.338
    assert decoded["min_cell_voltage"] == expect["min_cell_voltage_v"] == 3.332
    assert decoded["average_cell_voltage"] == expect["average_cell_voltage_v"]
    assert decoded["cell_delta"] == expect["cell_delta_v"]
    status = Status.from_d2(decoded, None, None)
    assert status.cell_count == expect["cell_count"]
    assert list(status.cell_voltages) == expect["cell_voltages_v"]
    assert list(status.temperatures) == expect["temperatures_c"]
    assert status.temperature_sensor_count == expect["temperature_sensor_count"]
    assert status.pack_voltage == expect["pack_voltage_v"]
    assert status.balancing is bool(expect["balancing_state"])
    assert list(status.faults) == expect["fault_registers"]
    # ... but they were sampled apart from the cell list (reference §4.1): in this very frame the
    # lowest-cell register says 3.332 V while the lowest listed cell (4) has 3.333 V (the highest,
    # 3.338 V, agrees). What is shown comes from the cell list alone, so a cell number and its voltage
    # always belong together.
    cells = expect["cell_voltages_v"]
    assert status.max_cell == 11
    assert status.min_cell == 4
    assert status.max_cell_voltage == cells[10] == max(cells) == 3.338
    assert status.min_cell_voltage == cells[3] == min(cells) == 3.333
    assert status.cell_delta == round(max(cells) - min(cells), 3)
    assert status.average_cell_voltage == round(sum(cells) / len(cells), 3)


def test_temperature_slots_7_and_8_are_not_temperatures(capture: dict[str, Any]) -> None:
    decoded = LIVE.decode(_response(capture, "d2030000003ed7b9"))
    assert decoded["temperatures"][6:] == (493, 3295)  # what a naive decoder would show
    status = Status.from_d2(decoded, None, None)
    assert status.temperatures == (28.0,)


def test_settings_decode_to_the_capture(capture: dict[str, Any]) -> None:
    request = "d20300800029965f"
    expect = _expect(capture, request)
    settings = Settings.from_decoded(SETTINGS.decode(_response(capture, request)))
    assert settings.rated_capacity == expect["rated_capacity_ah"]
    assert settings.string_count == expect["cell_count_setting"]
    assert settings.battery_type == expect["battery_type"]
    assert settings.sleep_time == expect["sleep_time_s"]
    assert settings.cell_overvoltage_warning == expect["cell_overvoltage_warn_v"]
    assert settings.cell_overvoltage_alarm == expect["cell_overvoltage_alarm_v"]
    assert settings.cell_undervoltage_warning == expect["cell_undervoltage_warn_v"]
    assert settings.cell_undervoltage_alarm == expect["cell_undervoltage_alarm_v"]
    assert settings.balance_start_voltage == expect["balance_start_voltage_v"]
    assert settings.balance_start_delta == expect["balance_start_delta_v"]


def test_identity_and_password(capture: dict[str, Any]) -> None:
    ident = IDENTITY.decode(_response(capture, "d20300a900208791"))
    password = PASSWORD.decode(_response(capture, "d20300c90003c656"))
    identity = Identity.from_decoded(ident, password)
    expect = _expect(capture, "d20300a900208791")
    assert identity.software_version == expect["software_version"]
    assert identity.hardware_version == expect["hardware_version"]
    assert identity.serial_number is None  # empty on the captured unit
    assert identity.password == _expect(capture, "d20300c90003c656")["password"]
    assert "123456" not in repr(identity)


def test_balancer_block(capture: dict[str, Any]) -> None:
    request = "d20300cc00055655"
    expect = _expect(capture, request)
    decoded = BALANCER.decode(_response(capture, request))
    assert decoded["balancer_enabled"] is expect["balancer_enabled"]
    assert decoded["register_00ce"] == expect["register_00ce"]
    assert decoded["register_00d0"] == expect["register_00d0"]
    assert decoded["production_date"] == "2000-01-01"


def test_registers_are_unique_and_inside_blocks() -> None:
    keys = [r.key for r in REGISTERS]
    assert len(keys) == len(set(keys))
    words: dict[int, str] = {}
    for reg in REGISTERS:
        for address in range(reg.address, reg.end):
            assert address not in words, f"{reg.key} overlaps {words.get(address)}"
            words[address] = reg.key
        assert any(reg in block.registers for block in BLOCKS), reg.key


def test_model_fields_are_register_keys() -> None:
    derived = {"cell_count", "temperature_sensor_count", "protocol"}
    for cls in (Status, Settings, Identity):
        for item in fields(cls):
            assert item.name in BY_KEY or item.name in derived, f"{cls.__name__}.{item.name}"


@pytest.mark.parametrize("raw", [0, 1, 2, 39, 40, 41, 999, 1000, 3335, 29999, 30000, 30001, 65534, 65535])
def test_numbers_decode_to_the_scaled_decimal_value(raw: int) -> None:
    """A number is (raw − offset) × scale to the scale's decimals: an int for a scale of 1."""
    for reg in REGISTERS:
        if reg.kind is not registers.Kind.NUMBER or raw in reg.absent or raw in reg.special:
            continue
        value = reg.decode_word(raw)
        if reg.scale == 1:
            assert value == raw - reg.offset
            assert type(value) is int, reg.key
        else:
            assert value == round((raw - reg.offset) * reg.scale, reg.decimals), reg.key
            assert type(value) is float, reg.key


def test_array_registers_decode_word_by_word() -> None:
    """Each element of an array register is what ``decode_word`` gives for its word."""
    words = tuple(range(3300, 3300 + LIVE.count))
    decoded = LIVE.decode(words)
    for reg in LIVE.registers:
        if reg.count > 1:
            assert decoded[reg.key] == tuple(reg.decode_word(raw) for raw in words[reg.address : reg.end]), reg.key


def test_scale_must_be_a_power_of_ten() -> None:
    """Decoding divides by 10**decimals, which only a scale of 1, 0.1, 0.01, … allows."""
    assert BY_KEY["cell_voltages"].decimals == 3
    assert BY_KEY["pack_voltage"].decimals == 1
    assert BY_KEY["cell_count"].decimals == 0
    with pytest.raises(ValueError, match="is not 1"):
        registers.Register(key="odd", address=0, description="", confidence=Confidence.UNKNOWN, scale=0.5)
    with pytest.raises(ValueError, match="is not 1"):
        registers.Register(key="coarse", address=0, description="", confidence=Confidence.UNKNOWN, scale=10)


def test_derived_attributes_follow_a_copy() -> None:
    """A register's decimals and a block's registers are derived again, never copied stale."""
    reg = BY_KEY["cell_voltages"]
    coarser = replace(reg, scale=0.1)
    assert (coarser.decimals, coarser.divisor) == (1, 10)
    assert coarser == replace(reg, scale=0.1)
    assert "decimals" not in repr(reg)
    moved = replace(LIVE, start=SETTINGS.start, count=SETTINGS.count)
    assert moved.registers == SETTINGS.registers
    assert moved != SETTINGS  # another name: another block, even with the same registers


def test_block_decode_checks_length() -> None:
    with pytest.raises(ValueError, match="needs 5 words"):
        BALANCER.decode((1, 2))


@pytest.mark.parametrize(
    ("key", "value", "raw"),
    [
        ("balance_start_voltage", 3.35, 3350),
        ("balance_start_delta", 0.02, 20),
        ("sleep_time", 65535, 65535),
        ("sleep_time", 3600, 3600),
        ("string_count", 24, 24),
        ("battery_type", "lto", 2),
        ("balancer_enabled", False, 0),
        ("balancer_enabled", True, 1),
    ],
)
def test_encode_decode_round_trip(key: str, value: Any, raw: int) -> None:
    reg = BY_KEY[key]
    assert reg.encode(value) == raw
    assert reg.decode_word(raw) == value


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("balance_start_voltage", 4.5),
        ("balance_start_voltage", 1.0),
        ("balance_start_delta", 0.0),
        ("sleep_time", 65536),
        ("sleep_time", -1),
        ("sleep_time", 0),
        ("sleep_time", 65535.5),  # rounds to 65536 (issue 14 item 11)
        ("string_count", 2.5),  # rounds to 2
        ("balance_start_delta", 0.0045),  # rounds to 4 mV
        ("string_count", 2),
        ("string_count", 25),
        ("battery_type", "lead_acid"),
        ("balancer_enabled", 2),
        ("balance_start_voltage", "x"),
        ("pack_voltage", 50.0),
    ],
)
def test_out_of_range_values_are_refused(key: str, value: Any) -> None:
    with pytest.raises(ValueOutOfRangeError):
        BY_KEY[key].encode(value)


def test_inferred_and_unknown_registers_are_marked() -> None:
    assert BY_KEY["string_count"].confidence is Confidence.INFERRED
    assert BY_KEY["balancing_cells"].confidence is Confidence.INFERRED
    assert BY_KEY["register_00d0"].confidence is Confidence.UNKNOWN
    assert BY_KEY["balancer_enabled"].confidence is Confidence.CAPTURED
    assert BY_KEY["password"].secret


def test_chemistry_ranges() -> None:
    assert balance_voltage_range("lto") == (1.8, 2.8)
    assert balance_voltage_range(None) == (1.8, 4.2)
    for chem in registers.CHEMISTRY.values():
        low, high = BY_KEY["balance_start_voltage"].minimum, BY_KEY["balance_start_voltage"].maximum
        assert low is not None and high is not None
        assert low <= chem.balance_min < chem.balance_max <= high


def test_no_cells_means_no_extreme_cells() -> None:
    """A module that reports no cells (count register 0, every slot empty) names no min/max cell."""
    live = LIVE.decode((0,) * LIVE.count)
    status = Status.from_d2(live, None, None)
    assert status.cell_voltages == ()
    assert status.max_cell is None
    assert status.min_cell is None


def test_the_absent_marker_is_never_a_number() -> None:
    """Issue 14 item 2: 0xFFFF decodes to None in every one-word register, in the table's own
    decoder and the compiled block decoders, except where 0xFFFF has a meaning of its own (the
    sleep time's "never") or the register is a bit field."""
    for block in BLOCKS:
        decoded = block.decode((RAW_ABSENT,) * block.count)
        for reg in block.registers:
            if reg.kind in (registers.Kind.ASCII, registers.Kind.DATE, registers.Kind.BITS):
                continue
            values = (decoded[reg.key],) if reg.count == 1 else decoded[reg.key]
            assert isinstance(values, tuple)
            if RAW_ABSENT in reg.special:
                assert values == (RAW_ABSENT,), reg.key
                continue
            assert reg.decode_word(RAW_ABSENT) is None, reg.key
            assert set(values) == {None}, reg.key


def test_absent_cells_and_temperatures_keep_their_places() -> None:
    """An absent cell or temperature is None in its own place; the others keep theirs."""
    words = [3335] * 16 + [0] * (LIVE.count - 16)  # 16 cells at 3.335 V
    words[2] = RAW_ABSENT
    words[0x20:0x28] = [68, RAW_ABSENT, 70, 0, 0, 0, 533, 3335]
    words[0x31], words[0x32] = 16, 3
    status = Status.from_d2(LIVE.decode(words), None, None)
    assert status.cell_voltages[1:4] == (3.335, None, 3.335)
    assert status.temperatures == (28.0, None, 30.0)
    assert status.max_cell == 1
    assert status.min_cell == 1
