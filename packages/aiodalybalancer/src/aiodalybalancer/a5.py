"""The legacy DALY "A5" protocol: 13-byte frames with a sum checksum (reference §3.2).

Two public reports read standalone DALY balancers wired to a UART with these frames; no public
capture *from a balancer* exists, so every layout here comes from BMS code and documents.
The client falls back to A5 only on wired links where the module never answers D2.

A5 is **read-only** in this integration: DALY never documented A5 settings writes, and the only
hint ("write id = read id − 0x40", from Daly2MQTT's RTC/SOC commands) is an inference nobody has
checked on a balancer. Sending guessed commands to a battery device is not acceptable.

Frame: ``A5 addr cmd 08 <8 data bytes> sum`` — addr 0x40 (UART/PC host) or 0x80 (Bluetooth app)
in requests, 0x01 in replies; sum = (bytes 0..11) & 0xFF.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
import math
import struct
from typing import Final

from .errors import FrameError

START: Final = 0xA5
LENGTH: Final = 13
DATA_LENGTH: Final = 8
HOST_UART: Final = 0x40
HOST_BLE: Final = 0x80
REPLY_ADDRESS: Final = 0x01
#: Cell voltages per 0x95 frame and temperatures per 0x96 frame (after the frame number).
CELLS_PER_FRAME: Final = 3
TEMPS_PER_FRAME: Final = 7
#: Raw current is (A × 10) + this; raw temperature is °C + this.
CURRENT_OFFSET: Final = 30000
TEMP_OFFSET: Final = 40


class Command(IntEnum):
    """A5 read commands a balancer answers (S11's capability table)."""

    PACK = 0x90
    EXTREMES = 0x91
    TEMPERATURE_EXTREMES = 0x92
    STATE = 0x93  # BMS only: a balancer does not answer
    COUNTS = 0x94
    CELLS = 0x95
    TEMPERATURES = 0x96
    BALANCING = 0x97
    FAILURES = 0x98
    BALANCE_THRESHOLDS = 0x5F


def checksum(data: bytes | bytearray | memoryview) -> int:
    """Sum of the bytes, low 8 bits."""
    return sum(data) & 0xFF


@dataclass(frozen=True, slots=True)
class A5Frame:
    """One A5 frame."""

    address: int
    command: int
    data: bytes = bytes(DATA_LENGTH)

    @property
    def is_reply(self) -> bool:
        """True for a module's reply; a frame with a host address is an echo of a request."""
        return self.address == REPLY_ADDRESS

    def encode(self) -> bytes:
        """The frame's 13 bytes."""
        if len(self.data) != DATA_LENGTH:
            raise FrameError(f"A5 data must be {DATA_LENGTH} bytes, got {len(self.data)}")
        body = bytes((START, self.address & 0xFF, self.command & 0xFF, DATA_LENGTH)) + self.data
        return body + bytes((checksum(body),))


def build_request(command: int, host: int = HOST_UART) -> A5Frame:
    """A read request (all-zero data)."""
    return A5Frame(host, command)


def parse(frame: bytes | bytearray | memoryview) -> A5Frame:
    """Parse one whole 13-byte frame, checking start byte, length byte and checksum."""
    data = bytes(frame)
    if len(data) != LENGTH or data[0] != START:
        raise FrameError(f"not an A5 frame: {data[:LENGTH].hex()}")
    if data[3] != DATA_LENGTH:
        raise FrameError(f"A5 length byte {data[3]} is not {DATA_LENGTH}")
    if checksum(data[:-1]) != data[-1]:
        raise FrameError("A5 checksum mismatch")
    return A5Frame(data[1], data[2], data[4:12])


@dataclass(frozen=True, slots=True)
class A5Framing:
    """A5 frames for ``FrameStream``: fixed length, sum checksum."""

    start_byte: int = START

    def length(self, head: bytearray) -> int | None:
        """Always 13 bytes; the length byte must say 8."""
        if len(head) < 4:
            return None
        if head[3] != DATA_LENGTH:
            raise FrameError("A5 length byte is not 8")
        return LENGTH

    def check(self, frame: bytes | bytearray) -> bool:
        """Sum checksum."""
        return len(frame) == LENGTH and checksum(frame[:-1]) == frame[-1]

    def decode(self, frame: bytes) -> A5Frame:
        """Parse the checked frame."""
        return parse(frame)


# --- typed replies ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pack:
    """0x90: pack voltage, "gather" voltage (V), current (A, + = charge), SOC (%)."""

    voltage: float
    gather_voltage: float
    current: float
    soc: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """0x94: cells, temperature sensors, charger/load state, DI/DO bits, cycles."""

    cell_count: int
    temperature_sensor_count: int
    charger: bool
    load: bool
    dio: int
    cycles: int


@dataclass(frozen=True, slots=True)
class BalanceThresholds:
    """0x5F: balance start voltage and start difference (V)."""

    start_voltage: float
    start_delta: float


def _reply(frame: A5Frame, command: Command) -> bytes:
    if not frame.is_reply:
        raise FrameError(f"A5 frame from address 0x{frame.address:02X} is not a reply (echo or asleep?)")
    if frame.command != command:
        raise FrameError(f"expected A5 reply 0x{command:02X}, got 0x{frame.command:02X}")
    if len(frame.data) != DATA_LENGTH:
        raise FrameError("A5 data must be 8 bytes")
    return frame.data


def decode_pack(frame: A5Frame) -> Pack:
    """Decode 0x90."""
    voltage, gather, current, soc = struct.unpack(">HHHH", _reply(frame, Command.PACK))
    return Pack(
        round(voltage * 0.1, 1),
        round(gather * 0.1, 1),
        round((current - CURRENT_OFFSET) * 0.1, 1),
        round(soc * 0.1, 1),
    )


def decode_counts(frame: A5Frame) -> Counts:
    """Decode 0x94."""
    data = _reply(frame, Command.COUNTS)
    cells, sensors, charger, load, dio = data[:5]
    (cycles,) = struct.unpack_from(">H", data, 5)
    if not 1 <= cells <= 48:
        raise FrameError(f"A5 cell count {cells} impossible")
    return Counts(
        cell_count=cells,
        temperature_sensor_count=sensors,
        charger=bool(charger),
        load=bool(load),
        dio=dio,
        cycles=cycles,
    )


def _multi(frames: Sequence[A5Frame], command: Command, count: int, per_frame: int) -> list[bytes]:
    """Frames of a multi-frame answer in order; surplus frames ignored (as batmon-ha does)."""
    needed = math.ceil(count / per_frame)
    payloads: list[bytes] = []
    for expected, frame in enumerate(frames[:needed], start=1):
        data = _reply(frame, command)
        if data[0] != expected:
            raise FrameError(f"A5 0x{command:02X} frame number {data[0]} where {expected} was due")
        payloads.append(data[1:])
    if len(payloads) < needed:
        raise FrameError(f"A5 0x{command:02X}: {len(payloads)} of {needed} frames")
    return payloads


def assemble_cells(frames: Sequence[A5Frame], cell_count: int) -> tuple[float, ...]:
    """Cell voltages (V) from the 0x95 frames: frame number + 3 × u16 mV each."""
    values: list[float] = []
    for payload in _multi(frames, Command.CELLS, cell_count, CELLS_PER_FRAME):
        values.extend(round(mv * 0.001, 3) for mv in struct.unpack_from(">HHH", payload))
    return tuple(values[:cell_count])


def assemble_temperatures(frames: Sequence[A5Frame], sensor_count: int) -> tuple[float, ...]:
    """Temperatures (°C) from the 0x96 frames: frame number + 7 × (°C + 40) each."""
    values: list[float] = []
    for payload in _multi(frames, Command.TEMPERATURES, sensor_count, TEMPS_PER_FRAME):
        values.extend(float(raw - TEMP_OFFSET) for raw in payload)
    return tuple(values[:sensor_count])


def decode_balancing(frame: A5Frame, cell_count: int) -> tuple[bool, ...]:
    """0x97: data byte k bit j (LSB first) is cell 8k+j+1."""
    data = _reply(frame, Command.BALANCING)
    return tuple(bool(data[i // 8] >> (i % 8) & 1) for i in range(min(cell_count, 48)))


def decode_balance_thresholds(frame: A5Frame) -> BalanceThresholds:
    """Decode 0x5F."""
    voltage, delta = struct.unpack_from(">HH", _reply(frame, Command.BALANCE_THRESHOLDS))
    return BalanceThresholds(round(voltage * 0.001, 3), round(delta * 0.001, 3))
