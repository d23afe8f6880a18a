"""Completeness: every valid frame hidden in noise comes out of the re-assembler, in order, once.

The fuzz tests prove that what comes out is valid; this proves that nothing valid is lost. The
noise is what a serial line or a BLE dongle really produces around answers: stray 0xD2 bytes
(the start byte), partial headers and cut-off frames, frames with a bad CRC right next to good
ones, ASCII and random bytes.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from aiodalybalancer.frames import (
    Direction,
    ExceptionResponse,
    ReadResponse,
    WriteMultipleAck,
    WriteSingle,
    parse,
)
from aiodalybalancer.stream import D2Framing, FrameStream

VECTORS = Path(__file__).resolve().parent / "vectors"
_CAPTURE = json.loads((VECTORS / "balancer_capture.json").read_text())
_BMS = json.loads((VECTORS / "daly_bms_frames.json").read_text())
#: Real answers, one frame each (the notification that holds two is left out).
REAL = [bytes.fromhex(r["hex"]) for r in _CAPTURE["responses"] if "expect_frames" not in r]
REAL.append(bytes.fromhex(_BMS["bms_24_cells"]["hex"]))

words = st.integers(0, 0xFFFF)
made = st.one_of(
    st.lists(words, min_size=0, max_size=62).map(lambda v: ReadResponse(tuple(v)).encode()),
    st.builds(lambda r, v: WriteSingle(r, v).encode(), words, words),
    st.builds(lambda s, n: WriteMultipleAck(s, n).encode(), words, words),
    st.builds(lambda f, c: ExceptionResponse(f, c).encode(), st.sampled_from([0x03, 0x06, 0x10]), st.integers(0, 255)),
)
valid = st.one_of(st.sampled_from(REAL), made)


@st.composite
def noise(draw: st.DrawFn) -> bytes:
    """One piece of noise that holds no valid frame."""
    kind = draw(st.sampled_from(["stray", "header", "cut", "bad_crc", "random", "ascii"]))
    if kind == "stray":
        return b"\xd2" * draw(st.integers(1, 3))
    if kind == "header":  # a start byte and a function code that promise a frame
        return bytes((0xD2, draw(st.sampled_from([0x03, 0x06, 0x10, 0x83, 0x86, 0x90])))) + draw(st.binary(max_size=2))
    frame = draw(valid)
    if kind == "cut":
        return frame[: draw(st.integers(1, len(frame) - 1))]
    if kind == "bad_crc":
        flip = draw(st.integers(1, 0xFFFF))
        return frame[:-2] + bytes((frame[-2] ^ (flip & 0xFF), frame[-1] ^ (flip >> 8)))
    if kind == "ascii":
        return draw(st.sampled_from([b"AT+PRODUCTINFO=NoPID", b"9600", b"\r\n", b"OK\r\n"]))
    return draw(st.binary(min_size=1, max_size=40))


@st.composite
def hidden(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """Valid frames and noise, interleaved at random; (the bytes, the valid frames in order)."""
    parts: list[tuple[bool, bytes]] = []
    for _ in range(draw(st.integers(0, 10))):
        if draw(st.booleans()):
            parts.append((True, draw(valid)))
        else:
            parts.append((False, draw(noise())))
    return b"".join(piece for _, piece in parts), [piece for is_frame, piece in parts if is_frame]


COMPLETE = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@COMPLETE
@given(case=hidden(), cuts=st.lists(st.integers(1, 3000), max_size=12))
def test_every_valid_frame_comes_out_in_order_exactly_once(case: tuple[bytes, list[bytes]], cuts: list[int]) -> None:
    data, frames = case
    expected = [parse(frame, Direction.RESPONSE) for frame in frames]
    whole = FrameStream(D2Framing(Direction.RESPONSE), partial_timeout=1e9)
    assert whole.feed(data) == expected
    chunked = FrameStream(D2Framing(Direction.RESPONSE), partial_timeout=1e9)
    out: list[object] = []
    start = 0
    for cut in sorted({c for c in cuts if c < len(data)}):
        out += chunked.feed(data[start:cut])
        start = cut
    out += chunked.feed(data[start:])
    assert out == expected
    assert chunked.stats.frames == whole.stats.frames == len(expected)


def test_a_frame_right_after_a_stray_start_byte() -> None:
    """The cases the property reaches by chance, written out: nothing between noise and frame."""
    echo = WriteSingle(0x00CF, 1).encode()
    reply = ReadResponse((1,)).encode()
    starts = (b"", b"\xd2\x03\x7c", b"\xd2\x10")  # nothing, or false starts that promise more bytes
    noises = (b"\xd2", b"\xd2\xd2", b"\xd2\x03", b"\xd2\x03\x7c", b"\xd2\x10", b"\xd2\x83", reply[:-1])
    for start, noise_bytes in itertools.product(starts, noises):
        stream = FrameStream(D2Framing(Direction.RESPONSE), partial_timeout=1e9)
        # The frame after the noise is the only complete one: nothing later can rescue it.
        assert stream.feed(start + noise_bytes + echo) == [WriteSingle(0x00CF, 1)], (start, noise_bytes)
        assert stream.feed(reply) == [ReadResponse((1,))], (start, noise_bytes)
