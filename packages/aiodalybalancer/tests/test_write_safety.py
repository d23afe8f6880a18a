"""Write safety and answer pairing at the protocol layer (issue: "Write safety", "Half-duplex echo").

Real frames throughout; the links are a byte-recording scripted transport (to prove what reached
the wire) and real pseudo-terminals opened through serialx, with the simulator behind them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass
import math
import os
import random
import tty

import pytest

from aiodalybalancer.client import DalyClient
from aiodalybalancer.errors import (
    DalyTimeoutError,
    ValueOutOfRangeError,
    WriteNotAcceptedError,
)
from aiodalybalancer.frames import (
    Direction,
    ReadRequest,
    ReadResponse,
    WriteSingle,
    parse,
)
from aiodalybalancer.models import ProtocolFamily
from aiodalybalancer.registers import (
    BALANCER,
    BY_KEY,
    LIVE,
    REGISTERS,
    DecodedValue,
    Kind,
    Register,
)
from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig
from aiodalybalancer.transport import SerialTransport

from .fakes import ScriptedTransport, VirtualTimeLoop

WRITABLE = [reg for reg in REGISTERS if reg.writable]


def _bad_values(reg: Register) -> list[object]:
    """Values the register table must refuse for ``reg``."""
    if reg.kind is Kind.FLAG:
        return [2, -1, "maybe", 0.5]
    if reg.kind is Kind.ENUM:
        return ["lead_acid", 0, None]
    assert reg.minimum is not None and reg.maximum is not None
    values: list[object] = [
        reg.minimum - 10 * reg.scale,
        reg.maximum + 10 * reg.scale,
        math.nan,
        math.inf,
        -math.inf,
        "3.3",
        True,
    ]
    return values


def _cases() -> list[tuple[str, object]]:
    cases = [(reg.key, value) for reg in WRITABLE for value in _bad_values(reg)]
    cases += [(key, 1) for key in ("pack_voltage", "cell_voltages", "password", "serial_number")]  # read-only
    return cases


@pytest.mark.parametrize(("key", "value"), _cases())
async def test_out_of_range_values_never_reach_the_wire(key: str, value: object) -> None:
    """Out-of-range (and NaN, infinite, wrongly typed, read-only) values are refused before
    anything reaches the wire: the recording transport is never even opened."""
    transport = ScriptedTransport(lambda _data: [])
    client = DalyClient(transport, timeout=0.1, retries=0)
    with pytest.raises(ValueOutOfRangeError):
        await client.write_setting(BY_KEY[key], value)  # type: ignore[arg-type]
    assert transport.writes == []
    assert transport.opens == 0


def _other_value(reg: Register, current: DecodedValue) -> DecodedValue:
    """A valid value for ``reg`` that differs from ``current``."""
    if reg.kind is Kind.FLAG:
        return not current
    if reg.kind is Kind.ENUM:
        return next(option for option in reg.options if option != current)
    assert reg.minimum is not None and reg.maximum is not None
    value = reg.maximum if current != reg.maximum else reg.minimum
    return int(value) if reg.scale == 1 else value


# --- real pseudo-terminals -------------------------------------------------------------------------


@dataclass
class PtyLink:
    """A pty whose far end is the simulator, optionally behind an adapter that echoes every byte."""

    path: str
    requests: list[object]


@contextlib.asynccontextmanager
async def pty_link(sim: SimulatedBalancer, *, echo: bool = False) -> AsyncIterator[PtyLink]:
    """Serve ``sim`` on a real pty; ``echo`` sends each request back first (half-duplex RS485).

    Every request frame the module end sees is recorded in ``PtyLink.requests`` (in order).
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    link = PtyLink(os.ttyname(slave), [])
    buffer = bytearray()

    def readable() -> None:
        try:
            data = os.read(master, 4096)
        except OSError:
            return
        if echo:
            os.write(master, data)
        buffer.extend(data)
        while len(buffer) >= 8:  # every request of the client is 8 bytes (0x03 and 0x06)
            link.requests.append(parse(bytes(buffer[:8]), Direction.REQUEST))
            del buffer[:8]
        for reply in sim.receive(data):
            for chunk in reply.chunks:
                loop.call_later(reply.delay, os.write, master, chunk)

    loop.add_reader(master, readable)
    try:
        yield link
    finally:
        loop.remove_reader(master)
        await asyncio.sleep(0.05)  # replies scheduled with a delay are written or dropped
        os.close(master)
        os.close(slave)


@pytest.fixture
def sim() -> SimulatedBalancer:
    return SimulatedBalancer(SimulatorConfig(cells=16, seed=11), clock=lambda: 0.0)


@pytest.mark.parametrize("reg", WRITABLE, ids=lambda reg: reg.key)
async def test_every_write_is_echo_checked_and_read_back(sim: SimulatedBalancer, reg: Register) -> None:
    """Every writable register: one 0x06 write, then exactly one read-back of that register, over
    a real serial line; the value returned is the module's."""
    value = _other_value(reg, sim.value(reg.key))
    async with pty_link(sim) as link:
        client = DalyClient(SerialTransport(link.path), timeout=1, retries=0)
        client.family = ProtocolFamily.D2
        try:
            assert await client.write_setting(reg, value) == value  # type: ignore[arg-type]
        finally:
            await client.close()
    assert link.requests == [WriteSingle(reg.address, reg.encode(value)), ReadRequest(reg.address, 1)]  # type: ignore[arg-type]
    assert sim.value(reg.key) == value
    assert client.stats.timeouts == 0  # the module's echo was taken as the echo, not dropped


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("string_count", 2.5),  # rounds to 2, below the minimum of 3
        ("sleep_time", 65535.5),  # rounds to 65536, which no register word can hold
        ("balance_start_delta", 0.0045),  # rounds to 4 mV, below the minimum of 5 mV
    ],
)
async def test_a_value_that_rounds_out_of_range_never_reaches_the_wire(
    sim: SimulatedBalancer, key: str, value: float
) -> None:
    """Issue 14 item 11: the range is checked on the value after rounding, so half a step
    outside it is refused before anything reaches the real serial line."""
    async with pty_link(sim) as link:
        client = DalyClient(SerialTransport(link.path), timeout=0.2, retries=0)
        client.family = ProtocolFamily.D2
        try:
            with pytest.raises(ValueOutOfRangeError):
                await client.write_setting(BY_KEY[key], value)
        finally:
            await client.close()
    assert link.requests == []
    assert sim.stats.writes == sim.stats.refused_writes == 0


async def test_ignored_write_raises_with_the_real_value(sim: SimulatedBalancer) -> None:
    """A write the module echoes but does not take raises ``WriteNotAcceptedError`` carrying the
    value the module really holds (read back over the real line)."""
    sim.ignore_writes.add("balance_start_voltage")
    before = sim.value("balance_start_voltage")
    async with pty_link(sim) as link:
        client = DalyClient(SerialTransport(link.path), timeout=1, retries=0)
        try:
            with pytest.raises(WriteNotAcceptedError) as caught:
                await client.write_setting(BY_KEY["balance_start_voltage"], 3.5)
        finally:
            await client.close()
    assert caught.value.actual == before
    assert sim.stats.ignored_writes == 1


async def test_a_wrong_echo_is_settled_by_the_read_back() -> None:
    """An echo that differs from the request (a bit flipped on the way, CRC recomputed by a
    bridge) does not count as success: the read-back decides, and a value that did not take raises."""
    words = {0x00A3: 3300}

    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        if isinstance(frame, WriteSingle):
            return [WriteSingle(frame.register, frame.value ^ 1).encode()]  # wrong echo, not stored
        assert isinstance(frame, ReadRequest)
        return [ReadResponse(tuple(words.get(a, 0) for a in range(frame.start, frame.start + frame.count))).encode()]

    client = DalyClient(ScriptedTransport(respond), timeout=0.2, retries=0)
    client.family = ProtocolFamily.D2
    with pytest.raises(WriteNotAcceptedError) as caught:
        await client.write_setting(BY_KEY["balance_start_voltage"], 3.45)
    assert caught.value.actual == 3.3


async def test_two_writes_and_a_poll_never_interleave(sim: SimulatedBalancer) -> None:
    """A write issued during a poll waits for the poll; two writes run one after the other, each
    with its read-back right behind it (seen at the module end of a real serial line)."""
    async with pty_link(sim) as link:
        client = DalyClient(SerialTransport(link.path), timeout=1, retries=0)
        try:
            await client.poll()  # learns the protocol family
            link.requests.clear()
            poll = asyncio.create_task(client.poll())
            await asyncio.sleep(0)
            first = asyncio.create_task(client.write_setting(BY_KEY["balance_start_voltage"], 3.4))
            second = asyncio.create_task(client.write_setting(BY_KEY["balance_start_delta"], 0.03))
            await asyncio.gather(poll, first, second)
        finally:
            await client.close()
    kinds = [(type(r).__name__, getattr(r, "register", getattr(r, "start", None))) for r in link.requests]
    voltage, delta = BY_KEY["balance_start_voltage"].address, BY_KEY["balance_start_delta"].address
    assert kinds == [
        ("ReadRequest", LIVE.start),
        ("ReadRequest", 0x003E),
        ("ReadRequest", 0x00CC),
        ("WriteSingle", voltage),
        ("ReadRequest", voltage),
        ("WriteSingle", delta),
        ("ReadRequest", delta),
    ]


# --- half-duplex echo and stale answers --------------------------------------------------------------


async def test_half_duplex_echo_is_not_an_answer_when_the_module_is_silent(sim: SimulatedBalancer) -> None:
    """An adapter that echoes the request bytes, with the module silent: the read times out
    instead of taking the echo for the module's answer."""
    sim.silent = True
    async with pty_link(sim, echo=True) as link:
        client = DalyClient(SerialTransport(link.path), timeout=0.2, retries=1)
        client.family = ProtocolFamily.D2
        try:
            with pytest.raises(DalyTimeoutError):
                await client.poll()
        finally:
            await client.close()
    assert len(link.requests) == 2  # asked, and asked once more


async def test_half_duplex_echo_then_the_real_answer(sim: SimulatedBalancer) -> None:
    """Echoing adapter with the module answering: reads return the module's values and a
    verified write works, without waiting out a single timeout."""
    async with pty_link(sim, echo=True) as link:
        client = DalyClient(SerialTransport(link.path), timeout=1, retries=0)
        try:
            status = (await client.poll()).status
            assert status.cell_voltages == sim.cell_voltages()
            assert await client.write_setting(BY_KEY["balance_start_delta"], 0.035) == 0.035
        finally:
            await client.close()
    assert sim.value("balance_start_delta") == 0.035
    assert client.stats.timeouts == 0


def _stale_then(
    respond: Callable[[bytes], list[bytes]], stale: bytes, *, before: bool
) -> Callable[[bytes], list[bytes]]:
    """Deliver ``stale`` in the same chunk as the first answer (before or after it)."""
    sent = {"stale": False}

    def wrapped(data: bytes) -> list[bytes]:
        answer = b"".join(respond(data))
        if sent["stale"] or not answer:
            return [answer] if answer else []
        sent["stale"] = True
        return [stale + answer if before else answer + stale]

    return wrapped


@pytest.mark.parametrize("before", [True, False], ids=["stale-first", "stale-last"])
async def test_a_stale_same_size_answer_in_the_same_chunk_is_never_taken(before: bool) -> None:
    """A late answer of the same size (an earlier request's, other values) arriving in one chunk
    with the real answer: neither is taken on trust; the request is asked again and the module's
    current value is returned, whichever order the two came in."""
    current = tuple(range(3300, 3300 + LIVE.count))
    stale = ReadResponse(tuple(range(4000, 4000 + LIVE.count))).encode()

    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        assert isinstance(frame, ReadRequest)
        return [ReadResponse(current[: frame.count]).encode()]

    transport = ScriptedTransport(_stale_then(respond, stale, before=before))
    client = DalyClient(transport, timeout=0.1, retries=2)
    client.family = ProtocolFamily.D2
    words = await client._read_words(LIVE.start, LIVE.count)
    assert words == current
    assert client.stats.ambiguous == 1
    # Asked again once another read (of another size) proved nothing older can still come.
    assert [parse(w, Direction.REQUEST) for w in transport.writes] == [
        ReadRequest(LIVE.start, LIVE.count),
        ReadRequest(BALANCER.start, BALANCER.count),
        ReadRequest(LIVE.start, LIVE.count),
    ]


async def test_a_late_answer_after_a_timeout_is_not_taken_for_the_retry() -> None:
    """An answer that comes after its request timed out is dropped as that request's: before
    asking again the client reads another block, whose answer comes after the late one (links
    deliver in order), so the retry gets the module's current value."""
    answers = iter([(1111,), (2222,)])

    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        assert isinstance(frame, ReadRequest)
        loop = asyncio.get_running_loop()
        if frame.start == BALANCER.start:  # queued behind the late answer on the line
            loop.call_later(0.1, transport._received, ReadResponse((0,) * BALANCER.count).encode())
            return []
        words = next(answers)
        answer = ReadResponse(words).encode()
        if words == (1111,):  # the first answer is late: after the timeout
            loop.call_later(0.45, transport._received, answer)
            return []
        return [answer]

    transport = ScriptedTransport(respond)
    client = DalyClient(transport, timeout=0.4, retries=1)
    client.family = ProtocolFamily.D2
    assert await client._read_words(0x00A3, 1) == (2222,)
    assert (client.stats.late_answers, client.stats.syncs) == (1, 1)
    await asyncio.sleep(0.2)  # the other block's answer, still under way, is dropped too


async def test_a_late_answer_to_another_request_is_never_taken() -> None:
    """A read that timed out is answered late, while the next read (another register, same
    answer size) waits and its own answer is lost: the late frame is recognised as the earlier
    request's answer (links deliver in order) and dropped; the retry gets the right register."""
    words = {0x00A3: 3300, 0x00A4: 20}
    lost = {0x00A4}

    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        assert isinstance(frame, ReadRequest)
        if frame.start == BALANCER.start:  # the line's next answer comes after the late one
            asyncio.get_running_loop().call_later(
                0.15, transport._received, ReadResponse((0,) * BALANCER.count).encode()
            )
            return []
        answer = ReadResponse((words[frame.start],)).encode()
        if frame.start == 0x00A3:  # answered after its timeout, during the next read
            asyncio.get_running_loop().call_later(0.3, transport._received, answer)
            return []
        if frame.start in lost:  # the next read's first answer is lost
            lost.discard(frame.start)
            return []
        return [answer]

    transport = ScriptedTransport(respond)
    client = DalyClient(transport, timeout=0.2, retries=0)
    client.family = ProtocolFamily.D2
    with pytest.raises(DalyTimeoutError):
        await client._read_words(0x00A3, 1)
    client.link.retries = 1
    assert await client._read_words(0x00A4, 1) == (20,)
    assert client.stats.late_answers == 1


async def test_an_answer_of_another_size_ends_what_is_owed() -> None:
    """Answers come in order: once a later request of another answer size is answered, a
    request that timed out before it cannot be answered any more, and a same-size answer after
    that is taken at once (no wasted retry)."""
    answers = {0x0000: ReadResponse((1, 2)), 0x00A3: ReadResponse((5,))}
    silent = {0x0000}

    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        assert isinstance(frame, ReadRequest)
        if frame.start in silent:
            silent.discard(frame.start)
            return []  # lost for good
        return [answers[frame.start].encode()]

    transport = ScriptedTransport(respond)
    client = DalyClient(transport, timeout=0.2, retries=0)
    client.family = ProtocolFamily.D2
    with pytest.raises(DalyTimeoutError):
        await client._read_words(0x0000, 2)
    assert await client._read_words(0x00A3, 1) == (5,)  # another size: ends what was owed
    assert await client._read_words(0x0000, 2) == (1, 2)  # taken, not dropped as late
    assert client.stats.late_answers == 0
    assert len(transport.writes) == 3


async def test_answers_that_come_late_in_order_never_show_an_old_cell_voltage() -> None:
    """The line stalls: every answer comes in order, but six timeouts after its request, for
    one poll; then the module answers at once again (behind what is still under way). Each
    answer carries the cell's voltage of when it was asked. A poll must show a voltage read
    during that poll, or fail: never one its requests did not ask for."""
    sim = SimulatedBalancer(SimulatorConfig(cells=8, seed=4), clock=lambda: 0.0)
    timeout = 0.05
    asked = 0
    line_free_at = 0.0
    latency = 6 * timeout

    def respond(data: bytes) -> list[bytes]:
        nonlocal asked, line_free_at
        asked += 1
        sim.set_cell_voltage(1, 3.0 + asked / 1000)  # the voltage says which request read it
        loop = asyncio.get_running_loop()
        for reply in sim.receive(data):
            line_free_at = max(line_free_at + 0.001, loop.time() + latency)
            loop.call_at(line_free_at, transport._received, reply.data)
        return []

    transport = ScriptedTransport(respond)
    client = DalyClient(transport, timeout=timeout, retries=2)
    client.family = ProtocolFamily.D2
    with pytest.raises(DalyTimeoutError):
        await client.poll(settings=True)
    latency = 0.0  # the stall is over; answers still queue behind the late ones
    for _ in range(4):
        first = asked + 1
        try:
            poll = await client.poll()
        except DalyTimeoutError:
            continue
        read_by = round((poll.status.cell_voltages[0] - 3.0) * 1000)
        assert read_by >= first, f"the poll that sent requests {first}.. shows the voltage of request {read_by}"
    await asyncio.sleep(0.5)  # what is still under way arrives before the test ends


async def _run_lines(rng: random.Random) -> list[tuple[int, int]]:
    """Polls over a line whose answers come in order, each at most once, after delays drawn
    from ``rng``: a stall, a module silent that then answers its whole backlog, jitter up to
    many timeouts, and lost answers. Returns, per poll that succeeded, the first request it
    sent and the request whose answer its cell voltage came from."""
    timeout = 0.05
    sim = SimulatedBalancer(SimulatorConfig(cells=8, seed=rng.randrange(100)), clock=lambda: 0.0)
    asked = 0
    line_free_at = 0.0
    pattern = rng.choice(("stall", "silent_then_backlog", "jitter"))
    stalled = rng.randint(1, 40)  # requests answered late (stall) or held back (silence)
    silent_until = rng.uniform(1, 40) * timeout
    stall = rng.uniform(0.5, 12) * timeout
    lost = rng.choice((0.0, 0.1, 0.3))

    def delay() -> float:
        if pattern == "stall":
            return stall if asked <= stalled else 0.0
        if pattern == "silent_then_backlog":
            return max(0.0, silent_until - loop.time())
        return rng.choice((0.0, rng.uniform(0, 3), rng.uniform(3, 12))) * timeout

    def respond(data: bytes) -> list[bytes]:
        nonlocal asked, line_free_at
        asked += 1
        sim.set_cell_voltage(1, 3.0 + asked / 1000)  # the voltage says which request read it
        for reply in sim.receive(data):
            if rng.random() < lost:
                continue  # at most once: never, here
            line_free_at = max(line_free_at + 0.001, loop.time() + delay())  # in order
            loop.call_at(line_free_at, transport._received, reply.data)
        return []

    loop = asyncio.get_running_loop()
    transport = ScriptedTransport(respond)
    client = DalyClient(transport, timeout=timeout, retries=rng.randint(0, 3))
    client.family = ProtocolFamily.D2
    shown: list[tuple[int, int]] = []
    for _ in range(10):
        first = asked + 1
        try:
            poll = await client.poll(settings=rng.random() < 0.3)
        except DalyTimeoutError:
            pass
        else:
            shown.append((first, round((poll.status.cell_voltages[0] - 3.0) * 1000)))
        await asyncio.sleep(rng.uniform(0, 3) * timeout)
    await asyncio.sleep(line_free_at - loop.time() + timeout)  # what is still under way arrives
    return shown


@pytest.mark.parametrize("seed", range(40))
def test_no_poll_ever_shows_a_value_from_before_its_own_requests(seed: int) -> None:
    """Randomised (seeded, so every run is the same): whatever the delays, as long as answers
    come in order and at most once, a poll shows values its own requests read, or fails."""
    loop = VirtualTimeLoop()
    try:
        shown = loop.run_until_complete(_run_lines(random.Random(seed)))
    finally:
        loop.close()
    for first, read_by in shown:
        assert read_by >= first, f"seed {seed}: the poll that sent requests {first}.. shows request {read_by}'s voltage"


async def _silent_for_long_then_back() -> tuple[int, list[bool]]:
    sim = SimulatedBalancer(SimulatorConfig(cells=8, seed=1), clock=lambda: 0.0)
    silent = True
    owed_most = 0

    def respond(data: bytes) -> list[bytes]:
        nonlocal owed_most
        owed_most = max(owed_most, len(client.link._owed))
        return [] if silent else [reply.data for reply in sim.receive(data)]

    transport = ScriptedTransport(respond)
    client = DalyClient(transport, timeout=0.05, retries=2)
    client.family = ProtocolFamily.D2
    for _ in range(200):
        with pytest.raises(DalyTimeoutError):
            await client.poll(settings=True)
    silent = False
    polls: list[bool] = []
    for _ in range(3):
        try:
            await client.poll()
        except DalyTimeoutError:
            polls.append(False)
        else:
            polls.append(True)
    return owed_most, polls


def test_a_long_silence_is_remembered_in_little_and_left_behind_at_once() -> None:
    """Nothing owed is forgotten, yet a module silent for hundreds of requests neither makes the
    list of what is owed grow with them nor keeps the polls failing once it answers again."""
    loop = VirtualTimeLoop()
    try:
        owed_most, polls = loop.run_until_complete(_silent_for_long_then_back())
    finally:
        loop.close()
    assert owed_most <= 10
    assert polls == [True, True, True]
