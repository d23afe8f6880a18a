"""Stream re-assembly: turn bytes that arrive in arbitrary chunks into whole, checked frames.

BLE notifications and UART reads do not follow frame boundaries: the balancer capture shows up to
three frames in one notification, a small MTU splits frames, and the dongle's ASCII AT replies
share the notify characteristic. The re-assembler (protocol reference §3.1.6):

* skips bytes until a frame start, then takes the length from the header;
* never accepts a frame whose CRC (or checksum) is wrong: it drops one byte and resyncs, so a good
  frame that follows garbage is never lost;
* while waiting for the rest of a frame that claims to be long, looks ahead for a complete valid
  frame later in the buffer, so a false start does not hold a real reply hostage;
* drops a partial frame after ``partial_timeout`` seconds of silence;
* can discard the exact echo of the request an adapter sends back on a half-duplex line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import time
from typing import Final, Protocol

from .errors import FrameError
from .frames import Direction, Frame, crc_ok, frame_length, parse
from .registers import D2_ADDRESS

#: Silence after which a partial frame is given up (reference §3.1.6: ~500 ms).
PARTIAL_TIMEOUT: Final = 0.5


class Framing[T](Protocol):
    """What the re-assembler needs to know about one frame family."""

    @property
    def start_byte(self) -> int:
        """The byte every frame of this family starts with."""
        ...

    def length(self, head: bytearray) -> int | None:
        """Frame length from its first bytes; ``None`` = need more; ``FrameError`` = no frame."""
        ...

    def check(self, frame: bytes | bytearray) -> bool:
        """True when the frame's CRC/checksum is right."""
        ...

    def decode(self, frame: bytes) -> T:
        """Turn a checked frame into its typed form."""
        ...


@dataclass(frozen=True, slots=True)
class D2Framing:
    """D2 (Modbus-like) frames in one direction."""

    direction: Direction = Direction.RESPONSE
    start_byte: int = D2_ADDRESS

    def length(self, head: bytearray) -> int | None:
        """Frame length from the header."""
        return frame_length(head, self.direction)

    def check(self, frame: bytes | bytearray) -> bool:
        """CRC-16/MODBUS check."""
        return crc_ok(frame)

    def decode(self, frame: bytes) -> Frame:
        """Parse the checked frame (its CRC is not checked twice)."""
        return parse(frame, self.direction, crc_checked=True)


@dataclass(slots=True)
class StreamStats:
    """Counters for diagnostics and tests."""

    frames: int = 0
    bad_checksums: int = 0
    dropped_bytes: int = 0
    timeouts: int = 0
    echoes: int = 0


class FrameStream[T]:
    """Incremental re-assembler over one frame family."""

    def __init__(
        self,
        framing: Framing[T],
        *,
        partial_timeout: float = PARTIAL_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Start with an empty buffer."""
        self._framing = framing
        self._start = bytes((framing.start_byte,))
        self._buffer = bytearray()
        self._timeout = partial_timeout
        self._clock = clock
        self._last_rx = 0.0
        self._echo: bytes | None = None
        self.stats = StreamStats()

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a frame."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget everything buffered (before a new request)."""
        self.stats.dropped_bytes += len(self._buffer)
        self._buffer.clear()
        self._echo = None

    def expect_echo(self, request: bytes) -> None:
        """Discard one exact copy of ``request`` if it is the next thing to arrive."""
        self._echo = request

    def feed(self, data: bytes | bytearray | memoryview) -> list[T]:
        """Add received bytes; return every whole, valid frame now complete, in order."""
        now = self._clock()
        if self._buffer and now - self._last_rx > self._timeout:
            self.stats.timeouts += 1
            self.reset()
        self._last_rx = now
        self._buffer += data
        frames: list[T] = []
        while self._buffer:
            frame = self._next()
            if frame is None:
                break
            frames.append(frame)
        return frames

    def _drop(self, count: int) -> None:
        self.stats.dropped_bytes += count
        del self._buffer[:count]

    def _next(self) -> T | None:
        """Take the next frame off the buffer, or return None when more bytes are needed."""
        buf = self._buffer
        while buf:
            index = buf.find(self._start)
            if index < 0:
                self._drop(len(buf))
                return None
            if index:
                self._drop(index)
            if self._echo is not None:
                echo = self._echo
                if buf[: len(echo)] == echo:
                    del buf[: len(echo)]
                    self.stats.echoes += 1
                    self._echo = None
                    continue
                if len(buf) < len(echo) and echo.startswith(buf):
                    return None
                self._echo = None
            try:
                length = self._framing.length(buf)
            except FrameError:
                self._drop(1)
                continue
            if length is None or len(buf) < length:
                if self._valid_frame_ahead():
                    self._drop(1)
                    continue
                return None
            raw = bytes(buf[:length])
            if not self._framing.check(raw):
                self.stats.bad_checksums += 1
                self._drop(1)
                continue
            del buf[:length]
            try:
                frame = self._framing.decode(raw)
            except FrameError:
                # Length and checksum fit but the content is impossible: not a frame after all.
                self.stats.bad_checksums += 1
                buf[:0] = raw[1:]
                self.stats.dropped_bytes += 1
                continue
            self.stats.frames += 1
            return frame
        return None

    def _valid_frame_ahead(self) -> bool:
        """True when a complete valid frame starts somewhere after buffer[0]."""
        buf = self._buffer
        index = buf.find(self._start, 1)
        while index > 0:
            try:
                length = self._framing.length(buf[index:])
            except FrameError:
                length = None
            if length is not None and index + length <= len(buf) and self._framing.check(buf[index : index + length]):
                return True
            index = buf.find(self._start, index + 1)
        return False
