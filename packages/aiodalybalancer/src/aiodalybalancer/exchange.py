"""The request/answer exchange over one transport, and the late-answer bookkeeping.

* Exactly one request is outstanding at a time: D2 replies do not carry the register address,
  so a reply is paired with the request that is waiting for it (and checked against its size).
  A late answer to a request that timed out is not taken for the answer to a later request:
  links deliver in order, so while such an answer may still come (one more timeout), a frame
  that fits it is dropped as that late answer. The exchange also listens a moment before it asks
  again, and drops different fitting frames that arrive together (which one is stale cannot be
  told), so the request is asked again.
* Every request has a timeout and a bounded number of retries; a lost link is reopened. Silence,
  bytes that hold no frame and frames that do not fit the request are three different errors.
* Once closed, a request that waits fails at once, and nothing opens the link again.

What is asked, and in which order, is the session's (``client.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import logging
from typing import Final

from . import a5
from .errors import (
    BadAnswerError,
    ConnectTimeoutError,
    DalyConnectionError,
    DalyError,
    DalyTimeoutError,
    FrameError,
    UnexpectedAnswerError,
    UnreadableAnswerError,
)
from .frames import Direction, ExceptionResponse, Frame, ReadRequest, ReadResponse, WriteSingle, parse
from .models import ProtocolFamily
from .record import Record
from .stream import D2Framing, FrameStream
from .transport import Transport, wire_time

_LOGGER = logging.getLogger(__name__)

#: Replies came 63–501 ms after the request in the capture (reference §7.4); 1.5–3 s advised.
DEFAULT_TIMEOUT: Final = 2.0
DEFAULT_RETRIES: Final = 2
#: After a timeout, how long to listen (and drop) before asking again: a late answer to the
#: request that timed out must not be taken for the answer to the retry.
LATE_GUARD: Final = 0.25
#: Reads held for an answer's wire time resume this much earlier, so that the timer's
#: granularity never makes the last bytes wait (about 5 bytes at 9600 baud).
HOLD_MARGIN: Final = 0.005
_Match = Callable[[object], bool]


class ClientStats(Record):
    """Counters for diagnostics, the benchmark and the soak."""

    __slots__ = ("requests", "timeouts", "retries", "link_errors", "unsolicited", "ambiguous", "late_answers")

    __hash__ = None  # type: ignore[assignment]  # counters change: not hashable

    def __init__(
        self,
        *,
        requests: int = 0,
        timeouts: int = 0,
        retries: int = 0,
        link_errors: int = 0,
        unsolicited: int = 0,
        ambiguous: int = 0,
        late_answers: int = 0,
    ) -> None:
        self.requests = requests
        self.timeouts = timeouts
        self.retries = retries
        self.link_errors = link_errors
        self.unsolicited = unsolicited
        #: Times several different answers that fit one request arrived together (all dropped).
        self.ambiguous = ambiguous
        #: Late answers to requests that had timed out, recognised and dropped.
        self.late_answers = late_answers


class _Pending:
    __slots__ = ("match", "future", "frames", "wanted", "seq", "exchange", "misfits")

    def __init__(
        self, match: _Match, future: asyncio.Future[object], *, wanted: int = 1, seq: int = 0, exchange: int = 0
    ) -> None:
        self.match = match
        self.future = future
        self.frames: list[object] = []
        self.wanted = wanted
        self.seq = seq
        self.exchange = exchange
        #: Valid frames that came while this request waited but do not fit it.
        self.misfits: list[object] = []


class _Owed:
    """A request that timed out: its answer may still come (links deliver in order)."""

    __slots__ = ("seq", "exchange", "match", "expires")

    def __init__(self, seq: int, exchange: int, match: _Match, expires: float) -> None:
        self.seq: Final = seq
        self.exchange: Final = exchange
        self.match: Final = match
        self.expires: Final = expires


class Exchange:
    """Sends one request at a time over ``transport`` and pairs the answers with it."""

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        family: ProtocolFamily | None = None,
    ) -> None:
        """Listen to ``transport``; nothing is opened until the first request."""
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        #: The protocol family the module speaks (None: not known yet, both are listened for).
        self.family = family
        #: Whether the last read took its UART wire time (a real 9600-baud line, not a fast one).
        self._wire_paced = False
        self.stats = ClientStats()
        self._d2: FrameStream[Frame] = FrameStream(D2Framing(Direction.RESPONSE))
        self._a5: FrameStream[a5.A5Frame] = FrameStream(a5.A5Framing())
        self._pending: _Pending | None = None
        #: Requests sent, and ``request`` calls made (answers are told apart by their order).
        self._seq = 0
        self._exchanges = 0
        self._owed: list[_Owed] = []
        self.closed = False
        transport.attach(self._on_data, self._on_lost)

    def close(self) -> None:
        """Refuse every request from now on; one that waits for its answer fails at once."""
        self.closed = True
        self._fail_pending(DalyConnectionError(f"link to {self.transport.description} closed"))

    def _check_open(self) -> None:
        """Raise ``DalyConnectionError`` once closed."""
        if self.closed:
            raise DalyConnectionError(f"link to {self.transport.description} closed")

    def _fail_pending(self, error: DalyError) -> None:
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_exception(error)

    # --- receiving --------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        frames: list[object] = []
        if self.family is not ProtocolFamily.A5:
            frames.extend(self._d2.feed(data))
        if self.family is not ProtocolFamily.D2:
            frames.extend(self._a5.feed(data))
        pending = self._pending
        if self._owed:
            frames = self._drop_late(frames, pending)
        if pending is not None and pending.wanted == 1 and not pending.future.done():
            fitting = [frame for frame in frames if pending.match(frame)]
            if len(fitting) > 1 and any(frame != fitting[0] for frame in fitting):
                # Several different frames that fit arrived together: one is a late answer to an
                # earlier request (D2 answers carry no address) and nothing tells which. Take
                # none; the request times out and is asked again.
                self.stats.ambiguous += 1
                _LOGGER.debug("dropped %d different answers that arrived together", len(fitting))
                frames = [frame for frame in frames if frame not in fitting]
        for frame in frames:
            if pending is not None and not pending.future.done() and pending.match(frame):
                pending.frames.append(frame)
                if len(pending.frames) >= pending.wanted:
                    pending.future.set_result(pending.frames)
                    # Answers come in order: a request older than this one whose answer would
                    # look different cannot be answered any more.
                    self._owed = [o for o in self._owed if o.seq > pending.seq or o.match(frame)]
            else:
                self.stats.unsolicited += 1
                if pending is not None and not pending.future.done():
                    pending.misfits.append(frame)
                _LOGGER.debug("dropped a frame nobody asked for: %s", type(frame).__name__)

    def _drop_late(self, frames: list[object], pending: _Pending | None) -> list[object]:
        """Drop frames that are late answers to requests of earlier exchanges that timed out.

        D2 answers carry no address, but a link delivers in order: while a request that timed
        out may still be answered, a frame that fits it is its answer, not the answer to the
        request sent after it. (A late answer to an earlier attempt of the *same* request is
        taken: it holds the same registers, read after that request was first made.)
        """
        now = asyncio.get_running_loop().time()
        self._owed = [o for o in self._owed if o.expires > now]
        kept = []
        for frame in frames:
            owed = next(
                (o for o in self._owed if o.match(frame) and (pending is None or o.exchange != pending.exchange)),
                None,
            )
            if owed is None:
                kept.append(frame)
                continue
            self._owed.remove(owed)
            self.stats.late_answers += 1
            _LOGGER.debug("dropped a late answer to an earlier request: %s", type(frame).__name__)
        return kept

    def _on_lost(self, exc: Exception | None) -> None:
        self._fail_pending(DalyConnectionError(f"link to {self.transport.description} lost: {exc}"))

    def _streams(self) -> list[FrameStream[Frame] | FrameStream[a5.A5Frame]]:
        """The re-assemblers received bytes are fed to (both while the family is unknown)."""
        streams: list[FrameStream[Frame] | FrameStream[a5.A5Frame]] = []
        if self.family is not ProtocolFamily.A5:
            streams.append(self._d2)
        if self.family is not ProtocolFamily.D2:
            streams.append(self._a5)
        return streams

    def _unanswered(self, request: bytes, pending: _Pending, unreadable: int) -> DalyError:
        """Why ``request`` got no answer: silence, bytes that hold no frame, or frames that do not fit."""
        link = self.transport.description
        if pending.misfits:
            got = _describe(pending.misfits[-1])
            return UnexpectedAnswerError(
                f"{link} answered {got} to a request for {_describe_request(request)} (another device or firmware?)"
            )
        if unreadable:
            return UnreadableAnswerError(
                f"only bytes that hold no frame came from {link} ({unreadable} bytes: noise on the line, "
                "a wrong baud rate, or not a DALY balancer?)"
            )
        return DalyTimeoutError(
            f"no answer from {link} within {self.timeout:g} s (module asleep, unplugged or out of range?)"
        )

    # --- one exchange -----------------------------------------------------------------------

    async def request(
        self,
        request: bytes,
        match: _Match,
        *,
        wanted: int = 1,
        retries: int | None = None,
        drop_echo: bool = True,
        reply_bytes: int = 0,
    ) -> list[object]:
        """Send ``request`` and wait for ``wanted`` matching frames; retry on timeout or loss.

        ``drop_echo`` discards one exact copy of the request (a half-duplex adapter's echo).
        It must be off for single writes: the module's real answer is byte-identical to the
        request there, so the write is verified by reading the register back instead.

        ``reply_bytes`` (the answer's known length) lets the transport hold its reads until the
        answer can have crossed the UART, once the link has shown it is that slow: then the
        event loop wakes once per answer, not once per piece of it, and nothing comes later.
        """
        attempts = (self.retries if retries is None else retries) + 1
        error: DalyError = DalyTimeoutError("no attempt made")
        #: Something answered, though not usefully, in an earlier attempt: that, not a later
        #: attempt's silence, is what the caller is told.
        bad: BadAnswerError | None = None
        self._exchanges += 1
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
                if isinstance(error, DalyTimeoutError | BadAnswerError):
                    # The answer that timed out may still be on its way: let it arrive (and be
                    # dropped, nobody waits) rather than take it for the answer to the retry.
                    await asyncio.sleep(min(LATE_GUARD, self.timeout / 4))
            self._check_open()
            loop = asyncio.get_running_loop()
            self._seq += 1
            pending = _Pending(match, loop.create_future(), wanted=wanted, seq=self._seq, exchange=self._exchanges)
            streams = self._streams()
            dropped = [stream.stats.dropped_bytes for stream in streams]
            held = False
            try:
                if not self.transport.is_open:
                    self._wire_paced = False  # a new link (maybe another adapter): learn its pace again
                await self.transport.open()
                if self.closed:  # closed while the link was being opened: close what was opened
                    await self.transport.close()
                    self._check_open()
                self._d2.reset()
                self._a5.reset()
                dropped = [stream.stats.dropped_bytes for stream in streams]
                if drop_echo:
                    self._d2.expect_echo(request)
                    self._a5.expect_echo(request)
                self._pending = pending
                self.stats.requests += 1
                await self.transport.write(request)
                wire = wire_time(len(request) + reply_bytes) if reply_bytes else 0.0
                if wire and self._wire_paced:
                    self.transport.hold_reads(wire - HOLD_MARGIN)
                    held = True
                sent = loop.time()
                async with asyncio.timeout(self.timeout):
                    result = await pending.future
                if wire:
                    self._wire_paced = loop.time() - sent >= 0.9 * wire
                assert isinstance(result, list)
                return result
            except TimeoutError:
                self.stats.timeouts += 1
                if held:
                    # Held reads may have kept an answer from being read in time (one slow answer
                    # can make a fast link look paced): read what came now, so a late answer is
                    # dropped before the retry, and let the next attempt read as bytes come.
                    self._wire_paced = False
                    self.transport.hold_reads(0)
                if wanted == 1:
                    # Its answer may still come; until a timeout more has passed it is owed.
                    self._owed.append(_Owed(pending.seq, pending.exchange, match, loop.time() + self.timeout))
                # Bytes every re-assembler fed had to drop, or still holds as a partial frame.
                unreadable = min(
                    stream.stats.dropped_bytes - before + stream.pending
                    for stream, before in zip(streams, dropped, strict=True)
                )
                error = self._unanswered(request, pending, unreadable)
                if isinstance(error, BadAnswerError):
                    bad = error
            except DalyConnectionError as err:
                self.stats.link_errors += 1
                error = err
                self._owed.clear()  # a new link carries nothing of the old one
                await self.transport.close()
                if isinstance(err, ConnectTimeoutError):
                    raise  # a bridge that let a whole connect time pass will not accept the next one
            finally:
                self._pending = None
                if not pending.future.done():
                    pending.future.cancel()
        raise bad if bad is not None and isinstance(error, DalyTimeoutError) else error


def _describe(frame: object) -> str:
    """A frame in a few words, for error messages."""
    if isinstance(frame, ReadResponse):
        return f"{len(frame.values)} registers"
    if isinstance(frame, ReadRequest):
        return f"{frame.count} registers"
    if isinstance(frame, WriteSingle):
        return f"a write of register 0x{frame.register:04X}"
    if isinstance(frame, ExceptionResponse):
        return f"an exception to function 0x{frame.function:02X}"
    if isinstance(frame, a5.A5Frame):
        return f"an A5 frame (command 0x{frame.command:02X})"
    return f"a {type(frame).__name__} frame"


def _describe_request(request: bytes) -> str:
    """The request's bytes in a few words (a D2 request, or an A5 command)."""
    try:
        return _describe(parse(request, Direction.REQUEST))
    except FrameError:
        return f"an A5 frame (command 0x{request[2]:02X})"
