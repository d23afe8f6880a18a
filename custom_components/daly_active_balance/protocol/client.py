"""The client: one API over any transport.

* Exactly one request is outstanding at a time: D2 replies do not carry the register address,
  so a reply is paired with the request that is waiting for it (and checked against its size).
  A late answer to a request that timed out is not taken for the answer to a later request:
  links deliver in order, so while such an answer may still come (one more timeout), a frame
  that fits it is dropped as that late answer. The client also listens a moment before it asks
  again, and drops different fitting frames that arrive together (which one is stale cannot be
  told), so the request is asked again.
* Every request has a timeout and a bounded number of retries; a lost link is reopened. Silence,
  bytes that hold no frame and frames that do not fit the request are three different errors.
* ``close()`` is for good: a request that waits fails at once, and nothing opens the link again
  (a serial port reopened after an unload would stay locked, a dongle stay connected).
* One lock covers a whole poll cycle and a whole verified write, so writes never interleave with
  polls and two writes never interleave.
* A write is refused before anything is sent when the value is outside the register table's
  range. After sending, the client checks the echo, then reads the register back and raises
  ``WriteNotAcceptedError`` if the module did not take the value. A write that got no echo and
  did not take is sent once more: a sleeping module wakes on it and drops it.
* D2 is tried first; on wired links a module that never answers D2 is tried with the legacy A5
  frames (reference §8).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import logging
import math
from typing import Final, Self

from . import a5
from .errors import (
    BadAnswerError,
    ConnectTimeoutError,
    DalyConnectionError,
    DalyError,
    DalyTimeoutError,
    ExceptionResponseError,
    FrameError,
    NotABalancerError,
    UnexpectedAnswerError,
    UnreadableAnswerError,
    WriteNotAcceptedError,
)
from .frames import (
    Direction,
    ExceptionResponse,
    Frame,
    Function,
    ReadRequest,
    ReadResponse,
    WriteSingle,
    parse,
)
from .models import Identity, ProtocolFamily, Settings, Status, cell_summary
from .registers import (
    BALANCER,
    BY_KEY,
    EXTENDED,
    IDENTITY,
    LIVE,
    PASSWORD,
    SETTINGS,
    Block,
    DecodedValue,
    Register,
)
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


@dataclass(slots=True)
class ClientStats:
    """Counters for diagnostics, the benchmark and the soak."""

    requests: int = 0
    timeouts: int = 0
    retries: int = 0
    link_errors: int = 0
    unsolicited: int = 0
    #: Times several different answers that fit one request arrived together (all dropped).
    ambiguous: int = 0
    #: Late answers to requests that had timed out, recognised and dropped.
    late_answers: int = 0


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll cycle's results."""

    status: Status
    settings: Settings | None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the config flow learns before creating an entry."""

    family: ProtocolFamily
    identity: Identity
    status: Status
    settings: Settings


@dataclass(slots=True)
class _Pending:
    match: _Match
    future: asyncio.Future[object]
    frames: list[object] = field(default_factory=list)
    wanted: int = 1
    seq: int = 0
    exchange: int = 0
    #: Valid frames that came while this request waited but do not fit it.
    misfits: list[object] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Owed:
    """A request that timed out: its answer may still come (links deliver in order)."""

    seq: int
    exchange: int
    match: _Match
    expires: float


class DalyClient:
    """Talks to one DALY active balancer over one transport."""

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        family: ProtocolFamily | None = None,
    ) -> None:
        """Nothing is opened until the first request."""
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.family = family
        #: Whether the last read took its UART wire time (a real 9600-baud line, not a fast one).
        self._wire_paced = False
        self.stats = ClientStats()
        #: The last raw word read at each address (for diagnostics' register dump).
        self.raw: dict[int, int] = {}
        self._d2: FrameStream[Frame] = FrameStream(D2Framing(Direction.RESPONSE))
        self._a5: FrameStream[a5.A5Frame] = FrameStream(a5.A5Framing())
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        #: Requests sent, and ``_exchange`` calls made (answers are told apart by their order).
        self._seq = 0
        self._exchanges = 0
        self._owed: list[_Owed] = []
        self._closed = False
        transport.attach(self._on_data, self._on_lost)

    async def __aenter__(self) -> Self:
        """Use as ``async with DalyClient(...) as client``."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the transport."""
        await self.close()

    async def close(self) -> None:
        """Close the link for good.

        A request that waits for its answer fails at once and opens nothing again (no retry, no
        read-back); the close then waits for it to end, so nothing of this client outlives it.
        """
        self._closed = True
        self._fail_pending(DalyConnectionError(f"link to {self.transport.description} closed"))
        await self.transport.close()
        try:
            async with asyncio.timeout(self.timeout):
                await self._lock.acquire()
        except TimeoutError:
            # Still opening a link (a connect is bounded by its transport): the request closes
            # what it opens itself once it sees the client closed.
            _LOGGER.debug("a request to %s was still under way at close", self.transport.description)
            return
        try:
            await self.transport.close()
        finally:
            self._lock.release()

    def _check_open(self) -> None:
        if self._closed:
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

    async def _exchange(
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
            try:
                await self.transport.open()
                if self._closed:  # closed while the link was being opened: close what was opened
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
                sent = loop.time()
                async with asyncio.timeout(self.timeout):
                    result = await pending.future
                if wire:
                    self._wire_paced = loop.time() - sent >= 0.9 * wire
                assert isinstance(result, list)
                return result
            except TimeoutError:
                self.stats.timeouts += 1
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

    async def _read_words(self, start: int, count: int) -> tuple[int, ...]:
        def match(frame: object) -> bool:
            if isinstance(frame, ExceptionResponse):
                return frame.function == Function.READ
            return isinstance(frame, ReadResponse) and len(frame.values) == count

        (frame,) = await self._exchange(ReadRequest(start, count).encode(), match, reply_bytes=5 + 2 * count)
        if isinstance(frame, ExceptionResponse):
            raise ExceptionResponseError(frame.function, frame.code)
        assert isinstance(frame, ReadResponse)
        self.raw.update(zip(range(start, start + count), frame.values, strict=True))
        return frame.values

    async def _read_block(self, block: Block) -> dict[str, DecodedValue]:
        return block.decode(await self._read_words(block.start, block.count))

    # --- protocol family --------------------------------------------------------------------

    async def _ensure_family(self) -> ProtocolFamily:
        if self.family is not None:
            return self.family
        try:
            await self._read_words(BALANCER.start, BALANCER.count)
        except DalyTimeoutError:
            if not self.transport.supports_a5:
                raise
            _LOGGER.debug("no D2 answer from %s, trying A5", self.transport.description)
            try:
                await self._a5_exchange(a5.Command.PACK, retries=0)
            except DalyTimeoutError:
                raise DalyTimeoutError(f"no answer from {self.transport.description} to D2 or A5 requests") from None
            self.family = ProtocolFamily.A5
        else:
            self.family = ProtocolFamily.D2
        _LOGGER.debug("%s speaks %s", self.transport.description, self.family)
        return self.family

    async def _a5_exchange(self, command: int, *, wanted: int = 1, retries: int | None = None) -> list[a5.A5Frame]:
        def match(frame: object) -> bool:
            return isinstance(frame, a5.A5Frame) and frame.is_reply and frame.command == command

        frames = await self._exchange(a5.build_request(command).encode(), match, wanted=wanted, retries=retries)
        return [f for f in frames if isinstance(f, a5.A5Frame)]

    # --- reading ----------------------------------------------------------------------------

    async def _status(self) -> Status:
        if await self._ensure_family() is ProtocolFamily.A5:
            return await self._a5_status()
        live = await self._read_block(LIVE)
        extended = await self._read_block(EXTENDED)
        balancer = await self._read_block(BALANCER)
        return Status.from_d2(live, extended, balancer)

    async def _settings(self) -> Settings:
        if await self._ensure_family() is ProtocolFamily.A5:
            (frame,) = await self._a5_exchange(a5.Command.BALANCE_THRESHOLDS)
            thresholds = a5.decode_balance_thresholds(frame)
            return Settings(balance_start_voltage=thresholds.start_voltage, balance_start_delta=thresholds.start_delta)
        return Settings.from_decoded(await self._read_block(SETTINGS))

    async def _identity(self) -> Identity:
        if await self._ensure_family() is ProtocolFamily.A5:
            return Identity()
        identity = await self._read_block(IDENTITY)
        password = await self._read_block(PASSWORD)
        balancer = await self._read_block(BALANCER)
        return Identity.from_decoded(identity, password, balancer)

    async def _a5_status(self) -> Status:
        (frame,) = await self._a5_exchange(a5.Command.PACK)
        pack = a5.decode_pack(frame)
        (frame,) = await self._a5_exchange(a5.Command.COUNTS)
        counts = a5.decode_counts(frame)
        cells = a5.assemble_cells(
            await self._a5_exchange(a5.Command.CELLS, wanted=math.ceil(counts.cell_count / 3)), counts.cell_count
        )
        temps: tuple[float, ...] = ()
        if counts.temperature_sensor_count:
            temps = a5.assemble_temperatures(
                await self._a5_exchange(a5.Command.TEMPERATURES, wanted=math.ceil(counts.temperature_sensor_count / 7)),
                counts.temperature_sensor_count,
            )
        (frame,) = await self._a5_exchange(a5.Command.BALANCING)
        balancing = a5.decode_balancing(frame, counts.cell_count)
        summary = cell_summary(cells)
        return Status(
            cell_voltages=cells,
            temperatures=temps,
            pack_voltage=pack.voltage,
            current=pack.current,
            max_cell_voltage=summary.max_cell_voltage,
            min_cell_voltage=summary.min_cell_voltage,
            average_cell_voltage=summary.average_cell_voltage,
            cell_delta=summary.cell_delta,
            cell_count=counts.cell_count,
            temperature_sensor_count=counts.temperature_sensor_count,
            balancing=any(balancing),
            balancing_cells=balancing,
            protocol=ProtocolFamily.A5,
        )

    async def read_status(self) -> Status:
        """Live values: cells, pack, temperatures, balancing, faults, balancer switch."""
        async with self._lock:
            return await self._status()

    async def read_settings(self) -> Settings:
        """The settings block."""
        async with self._lock:
            return await self._settings()

    async def read_identity(self) -> Identity:
        """Versions, serial number, production date and the (secret) password."""
        async with self._lock:
            return await self._identity()

    async def poll(self, *, settings: bool = False) -> Poll:
        """One poll cycle (status, and settings when asked), then release the link if wanted."""
        async with self._lock:
            try:
                status = await self._status()
                return Poll(status, await self._settings() if settings else None)
            finally:
                await self.transport.release()

    async def probe(self) -> ProbeResult:
        """Read everything once and check the device really is a DALY active balancer."""
        async with self._lock:
            try:
                family = await self._ensure_family()
                status = await self._status()
                if family is ProtocolFamily.D2 and status.balancer_enabled is None:
                    raise NotABalancerError(
                        "register 0x00CF is not a balancer switch (a DALY BMS rather than a balancer?)"
                    )
                if not status.cell_count:
                    raise NotABalancerError("the device reports no cells")
                return ProbeResult(family, await self._identity(), status, await self._settings())
            finally:
                await self.transport.release()

    async def read_raw(
        self, blocks: Sequence[Block] = (LIVE, EXTENDED, SETTINGS, IDENTITY, BALANCER)
    ) -> dict[int, int]:
        """A raw register dump of the given blocks (diagnostics)."""
        async with self._lock:
            try:
                if await self._ensure_family() is ProtocolFamily.A5:
                    return {}
                dump: dict[int, int] = {}
                for block in blocks:
                    words = await self._read_words(block.start, block.count)
                    dump.update(zip(range(block.start, block.end), words, strict=True))
                return dump
            finally:
                await self.transport.release()

    # --- writing ----------------------------------------------------------------------------

    async def write_setting(self, key: str, value: float | int | bool | str) -> DecodedValue:
        """Write one setting, verify it, and return the value the module now reports.

        Raises ``ValueOutOfRangeError`` (nothing sent) for a value outside the table's range,
        ``WriteNotAcceptedError`` when the read-back differs, ``DalyTimeoutError`` when the
        module does not answer the read-back.
        """
        reg = BY_KEY[key]
        raw = reg.encode(value)  # raises before anything reaches the wire
        async with self._lock:
            try:
                if await self._ensure_family() is ProtocolFamily.A5:
                    raise DalyError("this module speaks the legacy A5 protocol, whose settings writes are unknown")
                return await self._write_verified(reg, raw, value)
            finally:
                await self.transport.release()

    async def _write_verified(self, reg: Register, raw: int, value: object) -> DecodedValue:
        request = WriteSingle(reg.address, raw)
        echo = await self._send_write(reg, request)
        (actual,) = await self._read_words(reg.address, 1)
        if actual != raw and echo is None:
            # No echo, and the value did not take: the write may be what woke a sleeping module,
            # which drops what woke it (reference §7 item 9). Its read-back answered, so it is
            # awake now: send the write once more.
            _LOGGER.debug("%s did not take %s and gave no echo (asleep?): sending it once more", reg.key, raw)
            echo = await self._send_write(reg, request)
            (actual,) = await self._read_words(reg.address, 1)
        decoded = reg.decode_word(actual)
        if actual != raw:
            raise WriteNotAcceptedError(reg.key, value, decoded)
        if not echo:
            _LOGGER.debug("%s took the value although its echo was missing or wrong", reg.key)
        return decoded

    async def _send_write(self, reg: Register, request: WriteSingle) -> bool | None:
        """Send a write once; True when echoed as sent, False when echoed otherwise, None: no echo.

        A lost echo is not asked again: the read-back settles whether the value took.
        """

        def match(frame: object) -> bool:
            return isinstance(frame, WriteSingle | ExceptionResponse)

        try:
            (echo,) = await self._exchange(request.encode(), match, retries=0, drop_echo=False)
        except DalyTimeoutError, BadAnswerError:
            _LOGGER.debug("no echo for the write of %s; checking the read-back", reg.key)
            return None
        if isinstance(echo, ExceptionResponse):
            raise ExceptionResponseError(echo.function, echo.code)
        if echo != request:
            _LOGGER.debug("write of %s echoed %s instead of %s", reg.key, echo, request)
        return echo == request

    async def set_balancer(self, enabled: bool) -> bool:
        """Switch balancing on or off (register 0x00CF), verified."""
        return bool(await self.write_setting("balancer_enabled", enabled))


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
