"""D2 frames against the captured vectors and the DALY document's examples."""

from __future__ import annotations

from typing import Any

import pytest

from aiodalybalancer.errors import FrameError
from aiodalybalancer.frames import (
    Direction,
    ExceptionResponse,
    ReadRequest,
    ReadResponse,
    WriteMultiple,
    WriteMultipleAck,
    WriteSingle,
    crc16_modbus,
    frame_length,
    parse,
    with_crc,
)

from .reference import crc16_bitwise


def test_crc_check_value() -> None:
    """The catalogued CRC-16/MODBUS check value."""
    assert crc16_modbus(b"123456789") == 0x4B37


def test_crc_by_words_equals_the_bitwise_definition() -> None:
    """Word-at-a-time CRC: every length (odd ones end on a single byte), every kind of buffer."""
    data = bytes((i * 37 + 11) & 0xFF for i in range(300))
    for length in (*range(12), 127, 129, 299, 300):
        chunk = data[:length]
        expected = crc16_bitwise(chunk)
        assert crc16_modbus(chunk) == crc16_modbus(bytearray(chunk)) == crc16_modbus(memoryview(chunk)) == expected


def test_parse_can_skip_a_crc_already_checked() -> None:
    """The re-assembler checks the CRC before parsing; parse need not check it again."""
    frame = bytearray(ReadResponse((1, 2)).encode())
    frame[-1] ^= 0xFF
    with pytest.raises(FrameError, match="CRC"):
        parse(frame, Direction.RESPONSE)
    assert parse(frame, Direction.RESPONSE, crc_checked=True) == ReadResponse((1, 2))


def test_every_captured_frame_has_a_valid_crc(capture: dict[str, Any]) -> None:
    frames = [r["hex"] for r in capture["requests"]] + [d["hex"] for d in capture["doc_examples"]]
    frames += [r["hex"] for r in capture["responses"] if r.get("expect_frames") is None]
    for text in frames:
        data = bytes.fromhex(text)
        assert with_crc(data[:-2]) == data, text


@pytest.mark.parametrize(
    ("start", "count", "wire"),
    [
        (0x0000, 62, "d2030000003ed7b9"),
        (0x0080, 41, "d20300800029965f"),
        (0x00A9, 32, "d20300a900208791"),
        (0x00C9, 3, "d20300c90003c656"),
        (0x003E, 9, "d203003e0009f7a3"),
        (0x00CC, 5, "d20300cc00055655"),
        (0x000C, 1, "d203000c000157aa"),
    ],
)
def test_read_request_bytes(start: int, count: int, wire: str) -> None:
    assert ReadRequest(start, count).encode().hex() == wire
    assert parse(bytes.fromhex(wire), Direction.REQUEST) == ReadRequest(start, count)


def test_write_single_matches_the_app() -> None:
    assert WriteSingle(0x00CF, 1).encode().hex() == "d20600cf00016b96"
    assert WriteSingle(0x00CF, 0).encode().hex() == "d20600cf0000aa56"
    assert parse(bytes.fromhex("d20600cf0000aa56"), Direction.RESPONSE) == WriteSingle(0x00CF, 0)


def test_write_multiple_daly_layout_without_byte_count() -> None:
    assert WriteMultiple(0x000C, (1, 2)).encode().hex() == "d210000c0002000100027d65"
    assert WriteMultiple(0x00D4, (0x180B, 0x0709, 0x341C)).encode().hex() == "d21000d40003180b0709341cf7d8"
    assert parse(bytes.fromhex("d210000c0002000100027d65"), Direction.REQUEST) == WriteMultiple(0x000C, (1, 2))
    assert parse(bytes.fromhex("d210000c00029268"), Direction.RESPONSE) == WriteMultipleAck(0x000C, 2)
    assert WriteMultipleAck(0x000C, 2).encode().hex() == "d210000c00029268"


def test_read_response_round_trip() -> None:
    assert parse(bytes.fromhex("d203020001fc56"), Direction.RESPONSE) == ReadResponse((1,))
    assert ReadResponse((1,)).encode().hex() == "d203020001fc56"


def test_exception_frame_is_accepted() -> None:
    frame = ExceptionResponse(0x03, 0x02).encode()
    assert len(frame) == 5
    assert parse(frame, Direction.RESPONSE) == ExceptionResponse(0x03, 0x02)


@pytest.mark.parametrize(
    "bad",
    [
        "d2037c0d07",  # truncated
        "d20600cf0000aa57",  # wrong CRC
        "a50600cf0000aa56",  # wrong address
        "d20500cf0000aa56",  # unknown function
        "d203030001fc56",  # odd byte count
    ],
)
def test_malformed_frames_raise_frame_error(bad: str) -> None:
    with pytest.raises(FrameError):
        parse(bytes.fromhex(bad), Direction.RESPONSE)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ReadRequest(0, 0),
        lambda: ReadRequest(0, 63),
        lambda: ReadRequest(0x10000, 1),
        lambda: WriteSingle(0xCF, 0x10000),
        lambda: WriteMultiple(0, ()),
        lambda: WriteMultiple(0, (-1,)),
    ],
)
def test_impossible_requests_are_refused(build: Any) -> None:
    with pytest.raises(FrameError):
        build().encode()


def test_frame_length_needs_header() -> None:
    assert frame_length(b"\xd2", Direction.RESPONSE) is None
    assert frame_length(b"\xd2\x03", Direction.RESPONSE) is None
    assert frame_length(b"\xd2\x03\x7c", Direction.RESPONSE) == 129
    assert frame_length(b"\xd2\x10\x00\x0c\x00", Direction.REQUEST) is None
    assert frame_length(b"\xd2\x10\x00\x0c\x00\x02", Direction.REQUEST) == 12
    with pytest.raises(FrameError):
        frame_length(b"\xd2\x10\x00\x0c\x00\x00", Direction.REQUEST)
    with pytest.raises(FrameError):
        frame_length(b"\xd2\x44", Direction.REQUEST)
