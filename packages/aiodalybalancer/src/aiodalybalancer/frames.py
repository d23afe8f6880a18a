"""D2 frames: building requests and responses, CRC-16/MODBUS, and parsing one whole frame.

Layouts (protocol reference §3.1; register values big-endian, CRC appended low byte first)::

    read request        D2 03 AH AL NH NL CRC                       8 bytes
    read response       D2 03 BC <BC bytes> CRC                     5 + BC bytes
    write single        D2 06 AH AL VH VL CRC   (reply: identical)  8 bytes
    write multiple      D2 10 AH AL NH NL <2N bytes> CRC            8 + 2N bytes (no byte count!)
    write multiple ack  D2 10 AH AL NH NL CRC                       8 bytes
    exception           D2 (F|80) EC CRC                            5 bytes

The same function code means a different layout in each direction (0x03 request vs response,
0x10 request vs ack), so a parser is told which direction it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
import struct
from typing import Final

from .errors import FrameError
from .registers import D2_ADDRESS, MAX_READ_COUNT


class Function(IntEnum):
    """D2 function codes."""

    READ = 0x03
    WRITE_SINGLE = 0x06
    WRITE_MULTIPLE = 0x10


class Direction(Enum):
    """Which side sent the bytes being parsed."""

    REQUEST = "request"  # host → module
    RESPONSE = "response"  # module → host


def _crc_table() -> tuple[int, ...]:
    """The CRC register's change for each byte value (reflected polynomial 0xA001)."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS (reflected 0xA001, init 0xFFFF, no final XOR), a table look-up per byte."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    """Append the CRC, low byte first."""
    return body + crc16_modbus(body).to_bytes(2, "little")


def crc_ok(frame: bytes | bytearray | memoryview) -> bool:
    """True when the last two bytes are the CRC of the rest.

    Run over the whole frame, CRC included (low byte first), the CRC comes out zero exactly
    when it is right, as it has no final XOR: no slice, no second integer.
    """
    return len(frame) >= 3 and crc16_modbus(frame) == 0


# --- typed frames ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """Read ``count`` registers from ``start``."""

    start: int
    count: int

    def encode(self) -> bytes:
        """The request's bytes."""
        _check_register(self.start)
        if not 1 <= self.count <= MAX_READ_COUNT:
            raise FrameError(f"read count {self.count} outside 1..{MAX_READ_COUNT}")
        return with_crc(struct.pack(">BBHH", D2_ADDRESS, Function.READ, self.start, self.count))


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """The register values answering a read (the reply does not carry the start address)."""

    values: tuple[int, ...]

    def encode(self) -> bytes:
        """The response's bytes."""
        count = len(self.values)
        return with_crc(struct.pack(f">BBB{count}H", D2_ADDRESS, Function.READ, 2 * count, *self.values))


@dataclass(frozen=True, slots=True)
class WriteSingle:
    """Write one register; the module's reply is an identical frame (an echo)."""

    register: int
    value: int

    def encode(self) -> bytes:
        """The frame's bytes (request and echo alike)."""
        _check_register(self.register)
        _check_word(self.value)
        return with_crc(struct.pack(">BBHH", D2_ADDRESS, Function.WRITE_SINGLE, self.register, self.value))


@dataclass(frozen=True, slots=True)
class WriteMultiple:
    """Write several registers, DALY layout (no byte-count byte)."""

    start: int
    values: tuple[int, ...]

    def encode(self) -> bytes:
        """The request's bytes."""
        _check_register(self.start)
        if not 1 <= len(self.values) <= MAX_READ_COUNT:
            raise FrameError(f"write count {len(self.values)} outside 1..{MAX_READ_COUNT}")
        for value in self.values:
            _check_word(value)
        count = len(self.values)
        return with_crc(
            struct.pack(f">BBHH{count}H", D2_ADDRESS, Function.WRITE_MULTIPLE, self.start, count, *self.values)
        )


@dataclass(frozen=True, slots=True)
class WriteMultipleAck:
    """The module's acknowledgement of a write-multiple."""

    start: int
    count: int

    def encode(self) -> bytes:
        """The ack's bytes."""
        return with_crc(struct.pack(">BBHH", D2_ADDRESS, Function.WRITE_MULTIPLE, self.start, self.count))


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """A Modbus exception reply (never seen from a DALY device, accepted all the same)."""

    function: int
    code: int

    def encode(self) -> bytes:
        """The exception frame's bytes."""
        return with_crc(bytes((D2_ADDRESS, (self.function | 0x80) & 0xFF, self.code & 0xFF)))


Request = ReadRequest | WriteSingle | WriteMultiple
Response = ReadResponse | WriteSingle | WriteMultipleAck | ExceptionResponse
Frame = Request | Response


def _check_register(register: int) -> None:
    if not 0 <= register <= 0xFFFF:
        raise FrameError(f"register 0x{register:X} outside 0..0xFFFF")


def _check_word(value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise FrameError(f"value {value} outside 0..65535")


# --- lengths and parsing --------------------------------------------------------------------

#: Shortest prefix that tells a frame's length.
HEADER_LENGTH: Final = 3
_MULTI_HEADER: Final = 6


def frame_length(head: bytes | bytearray | memoryview, direction: Direction) -> int | None:
    """Total length of the frame starting at ``head[0]`` (an address byte).

    Returns ``None`` when more bytes are needed to tell, and raises ``FrameError`` when the
    bytes cannot start a frame in this direction.
    """
    if len(head) < 2:
        return None
    function = head[1]
    if direction is Direction.RESPONSE:
        if function == Function.READ:
            if len(head) < HEADER_LENGTH:
                return None
            byte_count = head[2]
            if byte_count % 2 or byte_count > 2 * MAX_READ_COUNT:
                raise FrameError(f"read response byte count {byte_count} impossible")
            return 5 + byte_count
        if function in (Function.WRITE_SINGLE, Function.WRITE_MULTIPLE):
            return 8
        if function & 0x80 and function & 0x7F in (Function.READ, Function.WRITE_SINGLE, Function.WRITE_MULTIPLE):
            return 5
        raise FrameError(f"unknown response function 0x{function:02X}")
    if function in (Function.READ, Function.WRITE_SINGLE):
        return 8
    if function == Function.WRITE_MULTIPLE:
        if len(head) < _MULTI_HEADER:
            return None
        count = (head[4] << 8) | head[5]
        if not 1 <= count <= MAX_READ_COUNT:
            raise FrameError(f"write-multiple count {count} impossible")
        return 8 + 2 * count
    raise FrameError(f"unknown request function 0x{function:02X}")


def parse(frame: bytes | bytearray | memoryview, direction: Direction, *, crc_checked: bool = False) -> Frame:
    """Parse exactly one whole frame, checking address, length and CRC.

    ``crc_checked=True`` skips the CRC for a frame whose CRC the caller has just checked (the
    re-assembler does, before it hands a frame over), so it is not computed twice.
    """
    data = bytes(frame)
    if len(data) < 5 or data[0] != D2_ADDRESS:
        raise FrameError(f"not a D2 frame: {data[:8].hex()}")
    length = frame_length(data, direction)
    if length != len(data):
        raise FrameError(f"frame length {len(data)} does not match its header ({length})")
    if not crc_checked and not crc_ok(data):
        raise FrameError("CRC mismatch")
    function = data[1]
    if function & 0x80:
        return ExceptionResponse(function & 0x7F, data[2])
    if function == Function.READ:
        if direction is Direction.RESPONSE:
            return ReadResponse(struct.unpack_from(f">{data[2] // 2}H", data, 3))
        start, count = struct.unpack_from(">HH", data, 2)
        if not 1 <= count <= MAX_READ_COUNT:
            raise FrameError(f"read count {count} outside 1..{MAX_READ_COUNT}")
        return ReadRequest(start, count)
    if function == Function.WRITE_SINGLE:
        register, value = struct.unpack_from(">HH", data, 2)
        return WriteSingle(register, value)
    start, count = struct.unpack_from(">HH", data, 2)
    if direction is Direction.RESPONSE:
        return WriteMultipleAck(start, count)
    return WriteMultiple(start, struct.unpack_from(f">{count}H", data, 6))
