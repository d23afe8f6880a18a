"""The stream re-assembler: chunking, garbage, bad CRCs, echoes and partial-frame timeouts."""

from __future__ import annotations

from typing import Any

import pytest

from aiodalybalancer import frames
from aiodalybalancer.frames import (
    Direction,
    ReadRequest,
    ReadResponse,
    WriteSingle,
    parse,
    with_crc,
)
from aiodalybalancer.stream import D2Framing, FrameStream, StreamStats

from .reference import crc16_bitwise

LIVE = bytes.fromhex(
    "d2037c0d070d060d070d050d080d090d080d090d090d080d0a0d080d060d0a0d080d080000000000000000000000000000"
    "00000000000000000000000000000000000000440000000000000000000002150d070215753000000d0a0d04004400440000"
    "00000010000100000000000000000d07000600000000000000000000d356"
)
BALANCER = bytes.fromhex("d2030a0001010000100001000ac2bc")
ECHO = bytes.fromhex("d20600cf00016b96")


def _stream(**kwargs: Any) -> FrameStream[Any]:
    return FrameStream(D2Framing(Direction.RESPONSE), **kwargs)


def test_one_byte_at_a_time() -> None:
    stream = _stream()
    out = []
    for byte in LIVE:
        out += stream.feed(bytes([byte]))
    assert out == [parse(LIVE, Direction.RESPONSE)]
    assert stream.pending == 0


def test_several_frames_in_one_chunk(capture: dict[str, Any]) -> None:
    merged = next(r for r in capture["responses"] if r.get("expect_frames"))
    frames = _stream().feed(bytes.fromhex(merged["hex"]))
    assert len(frames) == merged["expect_frames"] == 2
    assert frames[1] == ReadResponse((0x0001, 0x0100))


def test_ascii_noise_from_the_dongle_is_skipped(capture: dict[str, Any]) -> None:
    noise = b"".join(bytes.fromhex(h) for h in capture["dongle_ascii_on_notify_characteristic"])
    frames = _stream().feed(noise + BALANCER + b"\r\n" + noise + ECHO)
    assert [type(f) for f in frames] == [ReadResponse, WriteSingle]


def test_bad_crc_is_never_accepted_and_the_next_good_frame_survives() -> None:
    stream = _stream()
    corrupt = LIVE[:-1] + bytes([LIVE[-1] ^ 0xFF])
    frames = stream.feed(corrupt + BALANCER)
    assert frames == [parse(BALANCER, Direction.RESPONSE)]
    assert stream.stats.bad_checksums >= 1


def test_false_start_does_not_hold_a_complete_frame_hostage() -> None:
    # "d2 03 7c" claims a 129-byte frame; the real reply after it must come out at once.
    stream = _stream()
    assert stream.feed(b"\xd2\x03\x7c\x01\x02" + ECHO) == [WriteSingle(0x00CF, 1)]


def test_partial_frame_times_out() -> None:
    now = [0.0]
    stream = _stream(partial_timeout=0.5, clock=lambda: now[0])
    assert stream.feed(LIVE[:40]) == []
    now[0] = 1.0
    assert stream.feed(BALANCER) == [parse(BALANCER, Direction.RESPONSE)]
    assert stream.stats.timeouts == 1
    # Without the silence the split frame is completed.
    assert stream.feed(LIVE[:40]) == []
    now[0] = 1.1
    assert stream.feed(LIVE[40:]) == [parse(LIVE, Direction.RESPONSE)]


def test_half_duplex_echo_of_a_read_request_is_discarded() -> None:
    request = ReadRequest(0x00CC, 5).encode()
    stream = _stream()
    stream.expect_echo(request)
    assert stream.feed(request[:3]) == []
    assert stream.feed(request[3:] + BALANCER) == [parse(BALANCER, Direction.RESPONSE)]
    assert stream.stats.echoes == 1


def test_expected_echo_that_does_not_come_is_forgotten() -> None:
    stream = _stream()
    stream.expect_echo(ReadRequest(0x0000, 62).encode())
    assert stream.feed(BALANCER) == [parse(BALANCER, Direction.RESPONSE)]


def test_request_direction() -> None:
    stream = FrameStream(D2Framing(Direction.REQUEST))
    wire = ReadRequest(0, 62).encode() + b"xx" + WriteSingle(0xCF, 0).encode()
    assert stream.feed(wire) == [ReadRequest(0, 62), WriteSingle(0xCF, 0)]


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 64, 128])
def test_split_anywhere(cut: int) -> None:
    stream = _stream()
    assert stream.feed(LIVE[:cut]) == []
    assert stream.feed(LIVE[cut:]) == [parse(LIVE, Direction.RESPONSE)]


def test_reset_drops_buffered_bytes() -> None:
    stream = _stream()
    stream.feed(LIVE[:10])
    stream.reset()
    assert stream.pending == 0
    assert stream.feed(LIVE[10:]) == []


def test_a_frame_whose_crc_fits_but_whose_content_is_impossible_is_skipped() -> None:
    """A read request for 0 registers has a valid length and CRC but is no frame: resync after it."""
    impossible = with_crc(bytes.fromhex("d20300cc0000"))
    good = ReadRequest(0xCC, 5).encode()
    stream = FrameStream(D2Framing(Direction.REQUEST))
    assert stream.feed(impossible + good) == [ReadRequest(0xCC, 5)]
    assert stream.stats.bad_checksums == 1


def test_a_false_start_followed_by_an_impossible_header_still_finds_the_frame() -> None:
    """Looking ahead past a false start skips a start byte that cannot begin a frame (d2 ff)."""
    stream = _stream()
    assert stream.feed(b"\xd2\x03\x7c\x01" + b"\xd2\xff\x00" + ECHO) == [WriteSingle(0x00CF, 1)]


def test_partial_timeout_shipped_default_is_half_a_second() -> None:
    """Reference §3.1.6: a partial frame survives 0.5 s of silence, not a moment more."""
    now = [100.0]
    kept = FrameStream(D2Framing(Direction.RESPONSE), clock=lambda: now[0])
    assert kept.feed(LIVE[:40]) == []
    now[0] = 100.5
    assert kept.feed(LIVE[40:]) == [parse(LIVE, Direction.RESPONSE)]
    assert kept.stats == StreamStats(frames=1)
    now[0] = 200.0
    dropped = FrameStream(D2Framing(Direction.RESPONSE), clock=lambda: now[0])
    assert dropped.feed(LIVE[:40]) == []
    now[0] = 200.50001
    assert dropped.feed(LIVE[40:]) == []
    assert dropped.stats == StreamStats(timeouts=1, dropped_bytes=40 + 89)


def test_stream_stats_count_exactly() -> None:
    """Every counter, exactly, for input whose every byte is accounted for by hand."""
    stream = _stream()
    # 3 bytes of garbage, then a frame: 3 dropped, 1 frame.
    assert stream.feed(b"xyz" + BALANCER) == [parse(BALANCER, Direction.RESPONSE)]
    assert stream.stats == StreamStats(frames=1, dropped_bytes=3)
    # The echo frame with a wrong CRC: 1 bad checksum; its 8 bytes are dropped (the start byte,
    # then 7 bytes without another start byte), then the good frame.
    bad = ECHO[:-1] + bytes([ECHO[-1] ^ 0x01])
    assert stream.feed(bad + BALANCER) == [parse(BALANCER, Direction.RESPONSE)]
    assert stream.stats == StreamStats(frames=2, bad_checksums=1, dropped_bytes=3 + 8)
    # A stray start byte before a frame: 1 byte.
    assert stream.feed(b"\xd2" + ECHO) == [WriteSingle(0x00CF, 1)]
    assert stream.stats == StreamStats(frames=3, bad_checksums=1, dropped_bytes=3 + 8 + 1)
    # An expected echo, then the answer: 1 echo, nothing dropped.
    request = ReadRequest(0x00CC, 5).encode()
    stream.expect_echo(request)
    assert stream.feed(request + BALANCER) == [parse(BALANCER, Direction.RESPONSE)]
    assert stream.stats == StreamStats(frames=4, bad_checksums=1, dropped_bytes=12, echoes=1)
    # Five bytes of a frame, then a reset: 5 more dropped.
    assert stream.feed(BALANCER[:5]) == []
    assert stream.pending == 5
    stream.reset()
    assert stream.stats == StreamStats(frames=4, bad_checksums=1, dropped_bytes=17, echoes=1)


def test_stats_of_a_frame_that_fits_but_cannot_be() -> None:
    """A read request for 0 registers (d2 03 00 cc 00 00 + CRC 0x5696 sent 96 56): its length and CRC
    fit, its content does not. One bad checksum, its 8 bytes dropped one by one, then the frame."""
    impossible = bytes.fromhex("d20300cc00009656")
    assert with_crc(impossible[:-2]) == impossible
    stream = FrameStream(D2Framing(Direction.REQUEST))
    assert stream.feed(impossible + ReadRequest(0xCC, 5).encode()) == [ReadRequest(0xCC, 5)]
    assert stream.stats == StreamStats(frames=1, bad_checksums=1, dropped_bytes=8)


def test_garbage_that_looks_like_a_header_is_skipped_to_the_start_byte() -> None:
    """Bytes before the start byte go at once, even when they would read as a header (00 06)."""
    stream = _stream()
    assert stream.feed(b"\x00\x06" + ECHO) == [WriteSingle(0x00CF, 1)]
    assert stream.stats == StreamStats(frames=1, dropped_bytes=2)


def test_only_one_copy_of_the_expected_echo_is_discarded() -> None:
    """A single write's answer is identical to the request: the second copy is the answer."""
    stream = _stream()
    stream.expect_echo(ECHO)
    assert stream.feed(ECHO + ECHO) == [WriteSingle(0x00CF, 1)]
    assert stream.stats == StreamStats(frames=1, echoes=1)


def test_an_echo_expected_but_not_first_is_forgotten() -> None:
    stream = _stream()
    stream.expect_echo(ECHO)
    assert stream.feed(BALANCER + ECHO) == [parse(BALANCER, Direction.RESPONSE), WriteSingle(0x00CF, 1)]
    assert stream.stats.echoes == 0


def test_reset_forgets_the_expected_echo() -> None:
    stream = _stream()
    stream.expect_echo(ECHO)
    stream.reset()
    assert stream.feed(ECHO) == [WriteSingle(0x00CF, 1)]


def test_the_crc_is_computed_once_per_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """The re-assembler checks the CRC; parsing the checked frame does not check it again."""
    calls: list[int] = []

    def counting(data: bytes | bytearray | memoryview) -> int:
        calls.append(len(data))
        return real(data)

    real = frames.crc16_modbus
    monkeypatch.setattr(frames, "crc16_modbus", counting)
    assert _stream().feed(BALANCER) == [parse(BALANCER, Direction.RESPONSE, crc_checked=True)]
    assert calls == [len(BALANCER)]


def test_a_stray_start_byte_right_before_a_frame() -> None:
    """0xD2 0xD2 …: the first start byte's "function" 0xD2 is impossible; only it is dropped."""
    stream = _stream()
    assert stream.feed(b"\xd2" + BALANCER) == [parse(BALANCER, Direction.RESPONSE)]
    assert stream.stats.dropped_bytes == 1


def test_an_incomplete_frame_ahead_never_gives_up_the_current_one() -> None:
    """The bytes ahead start like a frame and their first five even carry a right CRC, but the
    frame they announce (9 bytes) is not all there: the frame at the start is waited for."""
    header = bytes.fromhex("d20304")  # a read response of two words: 9 bytes with its CRC
    inner = header + crc16_bitwise(header).to_bytes(2, "little")
    body = bytes.fromhex("d20306") + inner + b"\x00"  # three words: d203 04cc cc00
    frame = body + crc16_bitwise(body).to_bytes(2, "little")
    stream = _stream()
    assert stream.feed(frame[:8]) == []
    assert stream.feed(frame[8:]) == [ReadResponse((0xD203, int.from_bytes(inner[2:4]), inner[4] << 8))]
