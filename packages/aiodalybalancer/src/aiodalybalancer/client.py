"""The client: the D2/A5 session and verified writes, over one request/answer exchange.

The exchange (``exchange.py``) pairs answers with requests, times out, retries and drops late
answers; the client decides what to ask, in which order, and what the answers mean.

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
from collections.abc import Sequence
from dataclasses import dataclass
import logging
import math
from typing import Final, Self

from . import a5
from .errors import (
    BadAnswerError,
    DalyError,
    DalyTimeoutError,
    ExceptionResponseError,
    NotABalancerError,
    WriteNotAcceptedError,
)
from .exchange import DEFAULT_RETRIES, DEFAULT_TIMEOUT, ClientStats, Exchange
from .frames import ExceptionResponse, Function, ReadRequest, ReadResponse, WriteSingle
from .models import Identity, ProtocolFamily, Settings, Status, cell_summary
from .registers import (
    BALANCER,
    EXTENDED,
    IDENTITY,
    LIVE,
    PASSWORD,
    SETTINGS,
    Block,
    DecodedValue,
    Register,
)
from .transport import Transport

_LOGGER = logging.getLogger(__name__)

#: The register survey reads 0x0000 up to (not including) this address...
SURVEY_END: Final = 0x0100
#: ...at most this many registers at a time (the most the app reads at once, reference §3.1.1).
SURVEY_READ: Final = 62
#: Seconds after which a survey starts no more requests (a module answering noise or exceptions
#: to every unknown register would otherwise keep it going for minutes on a slow link).
SURVEY_TIME_LIMIT: Final = 120.0


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


@dataclass(frozen=True, slots=True)
class SurveyRange:
    """One range of the register survey: the words read, or why none were (``error``)."""

    start: int
    count: int
    words: tuple[int, ...] = ()
    error: str | None = None


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
        #: The request/answer exchange every read and write goes through.
        self.link = Exchange(transport, timeout=timeout, retries=retries, family=family)
        #: The last raw word read at each address (for diagnostics' register dump).
        self.raw: dict[int, int] = {}
        self._lock = asyncio.Lock()

    @property
    def family(self) -> ProtocolFamily | None:
        """The protocol family the module speaks, None until the first request tells."""
        return self.link.family

    @family.setter
    def family(self, family: ProtocolFamily | None) -> None:
        self.link.family = family

    @property
    def timeout(self) -> float:
        """Seconds each attempt of a request waits for its answer."""
        return self.link.timeout

    @timeout.setter
    def timeout(self, timeout: float) -> None:
        self.link.timeout = timeout

    @property
    def stats(self) -> ClientStats:
        """The exchange's counters."""
        return self.link.stats

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
        self.link.close()
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

    async def _read_words(self, start: int, count: int) -> tuple[int, ...]:
        def match(frame: object) -> bool:
            if isinstance(frame, ExceptionResponse):
                return frame.function == Function.READ
            return isinstance(frame, ReadResponse) and len(frame.values) == count

        (frame,) = await self.link.request(ReadRequest(start, count).encode(), match, reply_bytes=5 + 2 * count)
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

        frames = await self.link.request(a5.build_request(command).encode(), match, wanted=wanted, retries=retries)
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
            await self._a5_exchange(a5.Command.CELLS, wanted=math.ceil(counts.cell_count / a5.CELLS_PER_FRAME)),
            counts.cell_count,
        )
        temps: tuple[float, ...] = ()
        if counts.temperature_sensor_count:
            temps = a5.assemble_temperatures(
                await self._a5_exchange(
                    a5.Command.TEMPERATURES, wanted=math.ceil(counts.temperature_sensor_count / a5.TEMPS_PER_FRAME)
                ),
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

    async def survey(self, *, time_limit: float = SURVEY_TIME_LIMIT) -> tuple[SurveyRange, ...]:
        """Read every register from 0x0000 to 0x00FF the module answers, once; nothing is written.

        A range answered with an exception is split in halves to find what answers (an exception
        comes at once, so that is cheap); a range that times out or gets an unusable answer is
        recorded as such, once the module has shown it still answers: when it does not, it fell
        asleep or out of reach and the survey ends with that error.

        Each request holds the client on its own, so polls and writes go on between them. No
        request starts after ``time_limit`` seconds: what is left is recorded as not surveyed,
        its error naming the limit.
        """
        deadline = asyncio.get_running_loop().time() + time_limit
        try:
            async with self._lock:
                family = await self._ensure_family()
            if family is ProtocolFamily.A5:
                raise DalyError("this module speaks the legacy A5 protocol, which has no registers to survey")
            await self._survey_read(BALANCER.start, BALANCER.count)  # a sleeping module wakes on it
            ranges: list[SurveyRange] = []
            for start in range(0, SURVEY_END, SURVEY_READ):
                ranges += await self._survey_range(start, min(SURVEY_READ, SURVEY_END - start), deadline, time_limit)
            return tuple(ranges)
        finally:
            async with self._lock:
                await self.transport.release()

    async def _survey_read(self, start: int, count: int) -> tuple[int, ...]:
        async with self._lock:
            return await self._read_words(start, count)

    async def _survey_range(self, start: int, count: int, deadline: float, time_limit: float) -> list[SurveyRange]:
        if asyncio.get_running_loop().time() >= deadline:
            return [
                SurveyRange(start, count, error=f"not surveyed: the survey's time limit of {time_limit:g} s ran out")
            ]
        try:
            return [SurveyRange(start, count, await self._survey_read(start, count))]
        except ExceptionResponseError as err:
            if count == 1:
                return [SurveyRange(start, count, error=str(err))]
            half = count // 2
            parts = await self._survey_range(start, half, deadline, time_limit) + await self._survey_range(
                start + half, count - half, deadline, time_limit
            )
            if all(part.error == str(err) for part in parts):
                return [SurveyRange(start, count, error=str(err))]  # nothing in it answers
            return parts
        except (DalyTimeoutError, BadAnswerError) as err:
            await self._survey_read(BALANCER.start, BALANCER.count)  # raises when the module is gone
            return [SurveyRange(start, count, error=f"{type(err).__name__}: {err}")]

    # --- writing ----------------------------------------------------------------------------

    async def write_setting(self, reg: Register, value: float | int | bool | str) -> DecodedValue:
        """Write one setting (a register of the table), verify it, and return the value the module now reports.

        Raises ``ValueOutOfRangeError`` (nothing sent) for a value outside the table's range,
        ``WriteNotAcceptedError`` when the read-back differs, ``DalyTimeoutError`` when the
        module does not answer the read-back.
        """
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
            (echo,) = await self.link.request(request.encode(), match, retries=0, drop_echo=False)
        except (DalyTimeoutError, BadAnswerError):
            _LOGGER.debug("no echo for the write of %s; checking the read-back", reg.key)
            return None
        if isinstance(echo, ExceptionResponse):
            raise ExceptionResponseError(echo.function, echo.code)
        if echo != request:
            _LOGGER.debug("write of %s echoed %s instead of %s", reg.key, echo, request)
        return echo == request
