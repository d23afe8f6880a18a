"""Property-based tests: no input makes the protocol layer fail in an unplanned way.

The only exception that may escape a decoder is the project's own ``DalyError``; a frame with a
wrong CRC or checksum is never accepted; how bytes are chunked never changes the frames that come
out; and every writable register round-trips over its whole range.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from aiodalybalancer import a5
from aiodalybalancer.errors import DalyError
from aiodalybalancer.frames import Direction, crc_ok, parse
from aiodalybalancer.models import Identity, Settings, Status
from aiodalybalancer.registers import (
    BLOCKS,
    EXTENDED,
    LIVE,
    REGISTERS,
    Kind,
    Register,
)
from aiodalybalancer.stream import D2Framing, FrameStream

VECTORS = Path(__file__).resolve().parent / "vectors" / "balancer_capture.json"
_CAPTURE = json.loads(VECTORS.read_text())
REAL_FRAMES = [bytes.fromhex(r["hex"]) for r in _CAPTURE["responses"]]
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _reassemble(data: bytes, cuts: list[int]) -> list[object]:
    stream: FrameStream[object] = FrameStream(D2Framing(Direction.RESPONSE), partial_timeout=1e9)
    frames: list[object] = []
    start = 0
    for cut in sorted(set(cuts)):
        frames += stream.feed(data[start:cut])
        start = cut
    frames += stream.feed(data[start:])
    return frames


mutated = st.builds(
    lambda frame, flips: bytes(b ^ flips.get(i, 0) for i, b in enumerate(frame)),
    st.sampled_from(REAL_FRAMES),
    st.dictionaries(st.integers(0, 128), st.integers(1, 255), max_size=3),
)
noise = st.binary(max_size=300)
streams = st.lists(st.one_of(noise, st.sampled_from(REAL_FRAMES), mutated), max_size=6).map(b"".join)


@FUZZ
@given(data=streams, cuts=st.lists(st.integers(0, 2000), max_size=20))
def test_chunking_never_changes_the_frames(data: bytes, cuts: list[int]) -> None:
    whole = _reassemble(data, [])
    assert _reassemble(data, [c for c in cuts if c < len(data)]) == whole


@FUZZ
@given(data=streams)
def test_only_valid_crc_frames_come_out(data: bytes) -> None:
    for frame in _reassemble(data, []):
        encoded = frame.encode()  # type: ignore[attr-defined]
        assert crc_ok(encoded)
        assert encoded in data


@FUZZ
@given(data=st.one_of(noise, mutated), direction=st.sampled_from(list(Direction)))
def test_parse_raises_only_protocol_errors(data: bytes, direction: Direction) -> None:
    with contextlib.suppress(DalyError):
        parse(data, direction)


@FUZZ
@given(data=st.one_of(noise, st.binary(min_size=13, max_size=13).map(lambda b: b"\xa5" + b[1:])))
def test_a5_decoders_raise_only_protocol_errors(data: bytes) -> None:
    stream = FrameStream(a5.A5Framing())
    for frame in stream.feed(data):
        for decode in (
            a5.decode_pack,
            a5.decode_counts,
            a5.decode_balance_thresholds,
        ):
            with contextlib.suppress(DalyError):
                decode(frame)
        for assemble in (a5.assemble_cells, a5.assemble_temperatures):
            with contextlib.suppress(DalyError):
                assemble([frame], 5)
    with contextlib.suppress(DalyError):
        a5.parse(data)


words = st.integers(0, 0xFFFF)


@FUZZ
@given(live=st.lists(words, min_size=LIVE.count, max_size=LIVE.count), ext=st.lists(words, min_size=9, max_size=9))
def test_any_register_content_decodes_to_typed_results(live: list[int], ext: list[int]) -> None:
    status = Status.from_d2(LIVE.decode(live), EXTENDED.decode(ext), None)
    assert len(status.cell_voltages) == status.cell_count <= 24
    assert len(status.temperatures) <= 6
    if status.balancing_cells is not None:
        assert len(status.balancing_cells) == status.cell_count
    for block in BLOCKS:
        decoded = block.decode([w % 0x10000 for w in (live * 2)[: block.count]])
        Settings.from_decoded(decoded)
        Identity.from_decoded(decoded)


def _writable() -> list[Register]:
    return [reg for reg in REGISTERS if reg.writable]


@FUZZ
@given(data=st.data())
def test_writable_registers_round_trip_over_their_range(data: st.DataObject) -> None:
    reg = data.draw(st.sampled_from(_writable()))
    if reg.kind is Kind.FLAG:
        value: object = data.draw(st.booleans())
    elif reg.kind is Kind.ENUM:
        value = data.draw(st.sampled_from(reg.options))
    else:
        assert reg.minimum is not None
        assert reg.maximum is not None
        raw_low = round(reg.minimum / reg.scale) + reg.offset
        raw_high = round(reg.maximum / reg.scale) + reg.offset
        value = reg.decode_word(data.draw(st.integers(raw_low, raw_high)))
    raw = reg.encode(value)  # type: ignore[arg-type]
    assert reg.decode_word(raw) == value
