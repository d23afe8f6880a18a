"""The legacy A5 family: the reference's vectors, multi-frame answers, echoes and chunking."""

from __future__ import annotations

import struct

import pytest

from aiodalybalancer import a5
from aiodalybalancer.errors import FrameError
from aiodalybalancer.stream import FrameStream
from aiodalybalancer.tools.a5_device import A5DeviceState, answer


@pytest.mark.parametrize(
    "wire",
    [
        "a5409008" + "00" * 8 + "7d",
        "a5809508" + "00" * 8 + "c2",
        "a5409408" + "00" * 8 + "81",
        "a5019008023a0000753001ed0d",
    ],
)
def test_reference_checksums(wire: str) -> None:
    data = bytes.fromhex(wire.replace(" ", ""))[:13]
    assert a5.checksum(data[:-1]) == data[-1]


def test_requests_match_the_reference() -> None:
    assert a5.build_request(a5.Command.PACK).encode().hex() == "a5409008" + "00" * 8 + "7d"
    assert a5.build_request(a5.Command.CELLS, host=a5.HOST_BLE).encode().hex() == "a5809508" + "00" * 8 + "c2"
    assert a5.build_request(a5.Command.COUNTS).encode().hex() == "a5409408" + "00" * 8 + "81"


def test_pack_reply_from_the_reference() -> None:
    frame = a5.parse(bytes.fromhex("a5019008023a00007530 01ed 0d".replace(" ", "")))
    pack = a5.decode_pack(frame)
    assert (pack.voltage, pack.gather_voltage, pack.current, pack.soc) == (57.0, 0.0, 0.0, 49.3)


def _state(cells: int) -> A5DeviceState:
    voltages = tuple(round(3.3 + i * 0.001, 3) for i in range(cells))
    balancing = tuple(i in (0, 7, 8, 23) for i in range(cells))
    return A5DeviceState(voltages, (25.0, 27.0), round(sum(voltages), 1), balancing, 3.3, 0.02)


def _round_trip(command: a5.Command, state: A5DeviceState, chunk: int) -> list[a5.A5Frame]:
    wire = b"AT+X\r\n".join(answer(a5.build_request(command), state))
    stream = FrameStream(a5.A5Framing())
    frames: list[a5.A5Frame] = []
    for offset in range(0, len(wire), chunk):
        frames += stream.feed(wire[offset : offset + chunk])
    return frames


@pytest.mark.parametrize("cells", [3, 4, 13, 16, 24])
@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_answers_decode_back(cells: int, chunk: int) -> None:
    state = _state(cells)
    counts = a5.decode_counts(*_round_trip(a5.Command.COUNTS, state, chunk))
    assert (counts.cell_count, counts.temperature_sensor_count) == (cells, 2)
    assert a5.assemble_cells(_round_trip(a5.Command.CELLS, state, chunk), cells) == state.cell_voltages
    assert a5.assemble_temperatures(_round_trip(a5.Command.TEMPERATURES, state, chunk), 2) == (25.0, 27.0)
    balancing = a5.decode_balancing(*_round_trip(a5.Command.BALANCING, state, chunk), cells)
    assert balancing == state.balancing_cells
    thresholds = a5.decode_balance_thresholds(*_round_trip(a5.Command.BALANCE_THRESHOLDS, state, chunk))
    assert (thresholds.start_voltage, thresholds.start_delta) == (3.3, 0.02)
    # The integration never asks these three; the simulator answers them as a module would
    # (highest cell mV and number, lowest cell mV and number).
    (extremes,) = _round_trip(a5.Command.EXTREMES, state, chunk)
    assert struct.unpack(">HBHB", extremes.data[:6])[1::2] == (cells, 1)
    (temps,) = _round_trip(a5.Command.TEMPERATURE_EXTREMES, state, chunk)
    assert temps.data[:4] == bytes((27 + 40, 2, 25 + 40, 1))
    (failures,) = _round_trip(a5.Command.FAILURES, state, chunk)
    assert failures.data == bytes(8)


def test_balancer_does_not_answer_bms_commands() -> None:
    assert answer(a5.build_request(a5.Command.STATE), _state(4)) == []
    assert answer(a5.build_request(0xD9), _state(4)) == []


def test_bad_checksum_is_never_accepted() -> None:
    good = answer(a5.build_request(a5.Command.PACK), _state(4))[0]
    bad = good[:-1] + bytes([good[-1] ^ 1])
    stream = FrameStream(a5.A5Framing())
    assert stream.feed(bad) == []
    assert stream.feed(good) == [a5.parse(good)]
    with pytest.raises(FrameError):
        a5.parse(bad)


def test_echo_of_the_request_is_not_a_reply() -> None:
    echo = a5.parse(a5.build_request(a5.Command.PACK).encode())
    assert not echo.is_reply
    with pytest.raises(FrameError, match="not a reply"):
        a5.decode_pack(echo)


def test_multi_frame_order_missing_and_surplus() -> None:
    state = _state(7)
    frames = [a5.parse(f) for f in answer(a5.build_request(a5.Command.CELLS), state)]
    assert len(frames) == 3
    assert a5.assemble_cells([*frames, frames[0]], 7) == state.cell_voltages  # surplus ignored
    with pytest.raises(FrameError, match="frame number"):
        a5.assemble_cells([frames[1], frames[0], frames[2]], 7)
    with pytest.raises(FrameError, match="2 of 3"):
        a5.assemble_cells(frames[:2], 7)
    with pytest.raises(FrameError, match="expected A5 reply"):
        a5.decode_pack(frames[0])


def test_malformed_frames() -> None:
    with pytest.raises(FrameError):
        a5.parse(b"\xa5\x01\x90")
    with pytest.raises(FrameError):
        a5.parse(bytes.fromhex("a501900902 3a00007530 01ed0d".replace(" ", "")))
    with pytest.raises(FrameError):
        a5.A5Frame(1, 0x90, b"\x00").encode()
    counts = a5.A5Frame(a5.REPLY_ADDRESS, a5.Command.COUNTS, bytes(8))
    with pytest.raises(FrameError, match="cell count"):
        a5.decode_counts(counts)
