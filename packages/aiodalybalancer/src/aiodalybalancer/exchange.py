"""The request/answer exchange over one transport: answers are paired with requests by order.

D2 answers carry no register address, so an answer is told from another only by its kind and
size (a read of N registers answers 2N bytes; a write echoes its register; an A5 reply names its
command). Links deliver in order and a module answers each request at most once, so:

* every request sent is owed its answer until a frame of its kind arrives, or until the answer
  to a later request arrives (nothing older can come after it); a new link owes nothing;
* a frame belongs to the oldest owed request of its kind: a late answer to a request that timed
  out is dropped, never taken for the answer to a later one;
* a request is never sent while an earlier one of the same kind is still owed: the exchange
  first asks for something of another kind (a block the app reads) and waits for that answer,
  which proves that the late answer has come or never will. When every such kind is owed too,
  it asks for the kind whose oldest owed request is the most recent: an answer of that kind
  ends everything owed before that request, even when it is taken for its late answer;
* nothing owed is ever forgotten but by a new link, so a late answer cannot be taken for a new
  request's however long the line stalled. Unanswered requests of one kind in a row are
  counted in one entry, so a long silence keeps the list short.

Every request has a timeout and a bounded number of attempts; a lost link is reopened. Silence,
bytes that hold no frame and frames that do not fit are three different errors. Once closed, a
request that waits fails at once, and nothing opens the link again. What is asked, and in which
order, is the session's (``client.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
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
from .registers import BALANCER, EXTENDED, IDENTITY, LIVE, SETTINGS
from .stream import D2Framing, FrameStream
from .transport import Transport, wire_time

_LOGGER = logging.getLogger(__name__)

#: Replies came 63–501 ms after the request in the capture (reference §7.4); 1.5–3 s advised.
DEFAULT_TIMEOUT: Final = 2.0
DEFAULT_RETRIES: Final = 2
#: Reads held for an answer's wire time resume this much earlier, so that the timer's
#: granularity never makes the last bytes wait (about 5 bytes at 9600 baud).
HOLD_MARGIN: Final = 0.005
_Match = Callable[[object], bool]
#: What an answer is told apart by: its kind and size (registers read), register or command.
_Kind = tuple[str, int]


@dataclass(slots=True)
class ClientStats:
    """Counters for diagnostics, the benchmark and the soak."""

    requests: int = 0
    timeouts: int = 0
    retries: int = 0
    link_errors: int = 0
    #: Valid frames that fit no request owed an answer.
    unsolicited: int = 0
    #: Times several different answers that fit one request arrived together (all dropped).
    ambiguous: int = 0
    #: Late answers to requests that had timed out, recognised and dropped.
    late_answers: int = 0
    #: Requests sent only to settle the line before asking again (see the module's docstring).
    syncs: int = 0
    #: Chunks of bytes handed over by the link (each one wake-up of the event loop).
    reads: int = 0


@dataclass(slots=True, eq=False)
class _Owed:
    """A request sent whose answer may still come."""

    kind: _Kind | None
    match: _Match
    future: asyncio.Future[list[object]]
    wanted: int = 1
    frames: list[object] = field(default_factory=list)
    #: Valid frames that came while this request waited but fit no request owed an answer.
    misfits: list[object] = field(default_factory=list)
    #: A sync's: the kind it settles. Once nothing of that kind is owed, it has done its job.
    settles: _Kind | None = None
    #: Requests of the same kind sent right before this one and still owed (each timed out):
    #: their answers come before this one's.
    earlier: int = 0


def _kind(frame: object) -> _Kind | None:
    """What an answer is told apart by (None: an exception or a frame that answers nothing)."""
    if isinstance(frame, ReadRequest):
        return ("read", frame.count)
    if isinstance(frame, ReadResponse):
        return ("read", len(frame.values))
    if isinstance(frame, WriteSingle):
        return ("write", frame.register)
    if isinstance(frame, a5.A5Frame) and frame.is_reply:
        return ("a5", frame.command)
    return None


def _request_kind(request: bytes) -> _Kind | None:
    """The kind of answer ``request`` is owed."""
    if request[:1] == bytes((a5.START,)):
        return ("a5", a5.parse(request).command)
    return _kind(parse(request, Direction.REQUEST))


#: A request that settles the line: its bytes, the kind of its answer and that answer's length.
_Sync = tuple[bytes, _Kind | None, int]


def _sync_entry(request: bytes, reply_bytes: int) -> _Sync:
    return request, _request_kind(request), reply_bytes


#: Requests that settle the line after a timeout, in order of preference: reads the app makes,
#: of distinct sizes (D2), and single-frame A5 commands.
_SYNC_D2: Final = tuple(
    _sync_entry(ReadRequest(b.start, b.count).encode(), 5 + 2 * b.count)
    for b in (BALANCER, EXTENDED, IDENTITY, SETTINGS, LIVE)
)
_SYNC_A5: Final = tuple(
    _sync_entry(a5.build_request(c).encode(), 0) for c in (a5.Command.PACK, a5.Command.COUNTS, a5.Command.BALANCING)
)


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
        #: Whether this link's answers took their UART wire time (a real 9600-baud line).
        self._wire_paced = False
        self.stats = ClientStats()
        self._d2: FrameStream[Frame] = FrameStream(D2Framing(Direction.RESPONSE))
        self._a5: FrameStream[a5.A5Frame] = FrameStream(a5.A5Framing())
        #: Requests owed an answer, oldest first; the newest may be the one that waits.
        self._owed: list[_Owed] = []
        self.closed = False
        transport.attach(self._on_data, self._on_lost)

    def close(self) -> None:
        """Refuse every request from now on; one that waits for its answer fails at once."""
        self.closed = True
        self._fail_waiting(DalyConnectionError(f"link to {self.transport.description} closed"))

    def _check_open(self) -> None:
        if self.closed:
            raise DalyConnectionError(f"link to {self.transport.description} closed")

    def _waiting(self) -> _Owed | None:
        owed = self._owed[-1] if self._owed else None
        return owed if owed is not None and not owed.future.done() else None

    def _fail_waiting(self, error: DalyError) -> None:
        if (waiting := self._waiting()) is not None:
            waiting.future.set_exception(error)

    def _on_lost(self, exc: Exception | None) -> None:
        self._fail_waiting(DalyConnectionError(f"link to {self.transport.description} lost: {exc}"))

    def _streams(self) -> list[FrameStream[Frame] | FrameStream[a5.A5Frame]]:
        """The re-assemblers received bytes are fed to (both while the family is unknown)."""
        streams: list[FrameStream[Frame] | FrameStream[a5.A5Frame]] = []
        if self.family is not ProtocolFamily.A5:
            streams.append(self._d2)
        if self.family is not ProtocolFamily.D2:
            streams.append(self._a5)
        return streams

    # --- receiving --------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        self.stats.reads += 1
        frames: list[object] = [frame for stream in self._streams() for frame in stream.feed(data)]
        waiting = self._waiting()
        if waiting is not None and waiting.wanted == 1:
            fitting = [frame for frame in frames if _kind(frame) == waiting.kind]
            if any(frame != fitting[0] for frame in fitting):
                # Different answers of the kind asked for, in one chunk: one is an old frame
                # a dongle passed on again, and nothing tells which. Take none; ask again.
                self.stats.ambiguous += 1
                frames = [frame for frame in frames if frame not in fitting]
        for frame in frames:
            self._pair(frame, waiting)
        settled = waiting is not None and all(owed.kind != waiting.settles for owed in self._owed)
        if settled and waiting is not None and waiting.settles is not None and not waiting.future.done():
            waiting.future.set_result([])  # the late answer a sync was sent for came first

    def _pair(self, frame: object, waiting: _Owed | None) -> None:
        """Give ``frame`` to the oldest request owed an answer of its kind."""
        kind = _kind(frame)
        index = next(
            (
                i
                for i, owed in enumerate(self._owed)
                # An exception names no size: it is only trusted when one request is owed.
                if (kind is not None and kind == owed.kind) or (kind is None and i == 0 and owed.match(frame))
            ),
            None,
        )
        if index is None or not self._owed[index].match(frame):
            self.stats.unsolicited += 1
            if waiting is not None:
                waiting.misfits.append(frame)
            _LOGGER.debug("dropped a frame nobody asked for: %s", type(frame).__name__)
            return
        del self._owed[:index]  # answers come in order: nothing older can come any more
        owed = self._owed[0]
        if owed.earlier:  # the answer to one of the requests sent right before this one
            owed.earlier -= 1
            self.stats.late_answers += 1
            _LOGGER.debug("dropped a late answer to a request that timed out: %s", type(frame).__name__)
            return
        owed.frames.append(frame)
        if owed.future.done() and owed.settles is None:
            self.stats.late_answers += 1
            _LOGGER.debug("dropped a late answer to a request that timed out: %s", type(frame).__name__)
        if len(owed.frames) >= owed.wanted:
            del self._owed[0]
            if not owed.future.done():
                owed.future.set_result(owed.frames)

    # --- sending ----------------------------------------------------------------------------

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
        ``reply_bytes`` (the answer's length) lets a slow link hold its reads until the answer
        can be complete: the event loop then wakes once per answer, not once per piece of it.
        """
        kind = _request_kind(request)
        error: DalyError = DalyTimeoutError("no attempt made")
        bad: BadAnswerError | None = None  # what answered badly, rather than a later silence
        for attempt in range((self.retries if retries is None else retries) + 1):
            self.stats.retries += bool(attempt)
            try:
                # A link to open owes nothing (``_attempt`` forgets what the old one owed).
                if self.transport.is_open and any(owed.kind == kind for owed in self._owed):
                    await self._sync(kind)
                return await self._attempt(request, match, wanted=wanted, drop_echo=drop_echo, reply_bytes=reply_bytes)
            except BadAnswerError as err:
                error, bad = err, bad or err  # the request's own bad answer, not a sync's
            except DalyTimeoutError as err:
                error = err
            except DalyConnectionError as err:
                self.stats.link_errors += 1
                error = err
                await self.transport.close()
                if isinstance(err, ConnectTimeoutError):
                    raise  # a bridge that let a whole connect time pass will not accept the next one
        raise error if bad is None or isinstance(error, DalyConnectionError) else bad

    async def _sync(self, kind: _Kind | None) -> None:
        """Ask for something whose answer proves that no answer of ``kind`` can come any more.

        A kind nobody is owed, if there is one: once it is answered, nothing older can come.
        Else (the module left that many requests unanswered) the kind whose oldest owed request
        is the most recent: its answer ends everything owed before that request, even when it is
        taken for that request's late answer, and the next sync finds a kind nobody is owed.
        """
        owed = [owed.kind for owed in self._owed]

        def oldest_owed(sync: _Sync) -> int:
            return owed.index(sync[1]) if sync[1] in owed else len(owed)

        syncs = _SYNC_A5 if kind is not None and kind[0] == "a5" else _SYNC_D2
        request, _, reply_bytes = max((sync for sync in syncs if sync[1] != kind), key=oldest_owed)
        self.stats.syncs += 1
        await self._attempt(request, lambda frame: True, reply_bytes=reply_bytes, settles=kind)

    async def _attempt(
        self,
        request: bytes,
        match: _Match,
        *,
        wanted: int = 1,
        drop_echo: bool = True,
        reply_bytes: int = 0,
        settles: _Kind | None = None,
    ) -> list[object]:
        """Send ``request`` once and wait for its answer; it stays owed if none comes in time."""
        self._check_open()
        if not self.transport.is_open:
            self._owed.clear()  # a new link carries nothing of the old one
            self._wire_paced = False  # and may be another adapter: learn its pace again
        await self.transport.open()
        if self.closed:  # closed while the link was being opened: close what was opened
            await self.transport.close()
            self._check_open()
        streams = self._streams()
        for stream in streams:
            stream.reset()
            if drop_echo:
                stream.expect_echo(request)
        dropped = [stream.stats.dropped_bytes for stream in streams]
        loop = asyncio.get_running_loop()
        owed = _Owed(_request_kind(request), match, loop.create_future(), wanted, settles=settles)
        if self._owed and _same_kind_in_a_row(self._owed[-1], owed):
            owed.earlier = self._owed.pop().earlier + 1
        self._owed.append(owed)
        self.stats.requests += 1
        try:
            await self.transport.write(request)
            wire = wire_time(len(request) + reply_bytes) if reply_bytes else 0.0
            if wire and self._wire_paced:  # never longer than half a timeout: a fast link loses no answer
                self.transport.hold_reads(min(wire - HOLD_MARGIN, self.timeout / 2))
            sent = loop.time()
            async with asyncio.timeout(self.timeout):
                frames = await owed.future
        except TimeoutError:
            self.stats.timeouts += 1
            unreadable = min(s.stats.dropped_bytes - d + s.pending for s, d in zip(streams, dropped, strict=True))
            raise self._unanswered(request, owed, unreadable) from None
        finally:
            if not owed.future.done():
                owed.future.cancel()
        if wire and not self._wire_paced:
            self._wire_paced = loop.time() - sent >= 0.9 * wire
        return frames

    def _unanswered(self, request: bytes, owed: _Owed, unreadable: int) -> DalyError:
        """Why ``request`` got no answer: frames that do not fit, bytes that hold no frame, or silence."""
        link = self.transport.description
        if owed.misfits:
            got = _describe(owed.misfits[-1])
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


def _same_kind_in_a_row(last: _Owed, new: _Owed) -> bool:
    """Whether ``last`` (unanswered) can be counted in ``new``: one answer each, of one kind."""
    return new.kind is not None and last.kind == new.kind and last.wanted == new.wanted == 1 and not last.frames


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
