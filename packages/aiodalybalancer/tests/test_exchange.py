"""The exchange on its own terms: its defaults, its counters, how it settles the line after a
timeout, how it paces reads on a slow line, and what it reports (exchange.py's docstring).

Scenarios of timeouts run on a virtual clock (``run_in_virtual_time``): no test waits for a
timer, and the order of events depends on the scenario alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import override

import pytest

from aiodalybalancer import a5
from aiodalybalancer.client import DalyClient
from aiodalybalancer.errors import (
    DalyConnectionError,
    DalyTimeoutError,
    UnexpectedAnswerError,
    UnreadableAnswerError,
)
from aiodalybalancer.exchange import HOLD_MARGIN, ClientStats, Exchange
from aiodalybalancer.frames import Direction, ReadRequest, ReadResponse, WriteSingle, parse
from aiodalybalancer.models import ProtocolFamily
from aiodalybalancer.registers import BALANCER, BY_KEY, EXTENDED, IDENTITY, LIVE, SETTINGS, Block
from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig
from aiodalybalancer.transport import wire_time

from .fakes import ScriptedTransport, SimTransport, run_in_virtual_time


def _sim(**config: object) -> SimulatedBalancer:
    return SimulatedBalancer(SimulatorConfig(cells=16, seed=3, **config), clock=lambda: 0.0)  # type: ignore[arg-type]


def _answers(sim: SimulatedBalancer) -> Callable[[bytes], list[bytes]]:
    """The simulator's answers, each in one chunk, at once."""
    return lambda data: [reply.data for reply in sim.receive(data)]


def _read(block: Block) -> bytes:
    return ReadRequest(block.start, block.count).encode()


def _numbered(lost: Callable[[int, ReadRequest], bool] = lambda n, frame: False) -> Callable[[bytes], list[bytes]]:
    """A module whose every word of an answer is the number of the request it answers (1, 2, …),
    so a test sees which request an answer belongs to; it loses the answers ``lost`` names."""
    asked = 0

    def respond(data: bytes) -> list[bytes]:
        nonlocal asked
        asked += 1
        frame = parse(data, Direction.REQUEST)
        assert isinstance(frame, ReadRequest)
        return [] if lost(asked, frame) else [ReadResponse((asked,) * frame.count).encode()]

    return respond


# --- defaults and counters ----------------------------------------------------------------------


def test_by_default_a_request_waits_two_seconds_and_is_tried_three_times() -> None:
    """The defaults the docs advise (replies come within 0.5 s; 1.5–3 s advised): a silent module
    is given up on after a try and two retries of 2 s each."""

    async def scenario() -> tuple[float, int]:
        transport = ScriptedTransport(lambda _data: [])
        client = DalyClient(transport, family=ProtocolFamily.D2)
        with pytest.raises(DalyTimeoutError):
            await client.poll()
        return asyncio.get_running_loop().time(), len(transport.writes)

    elapsed, sent = run_in_virtual_time(scenario())
    assert sent == 3
    assert elapsed == pytest.approx(3 * 2.0)


async def test_the_counters_count_requests_chunks_and_stray_frames_from_zero() -> None:
    """Each request sent, each chunk the link handed over and each frame nobody asked for is
    counted once, and nothing that did not happen is counted."""
    sim = _sim()
    stray = ReadResponse((1, 2)).encode()  # no read of a poll is 2 registers long

    def respond(data: bytes) -> list[bytes]:
        (answer,) = _answers(sim)(data)
        return [stray, answer[:4], answer[4:]]

    client = DalyClient(ScriptedTransport(respond), timeout=1, retries=1, family=ProtocolFamily.D2)
    assert client.stats == ClientStats()
    assert (await client.poll()).status.cell_voltages == sim.cell_voltages()
    assert client.stats == ClientStats(requests=3, reads=9, unsolicited=3)


# --- settling the line after a timeout -----------------------------------------------------------


def test_a_late_answer_that_comes_during_the_sync_ends_it() -> None:
    """A read times out; before asking again the exchange reads another block. The late answer
    comes first: it proves the line settled, so the retry goes out without waiting for the other
    block's answer (lost here), and returns its own answer."""

    async def scenario() -> tuple[tuple[int, ...], ScriptedTransport, ClientStats]:
        loop = asyncio.get_running_loop()
        respond = _numbered(lambda n, frame: n == 2)  # the other block's answer is lost

        def late_first(data: bytes) -> list[bytes]:
            answers = respond(data)
            if len(transport.writes) == 1:  # the first answer comes after its timeout
                loop.call_later(0.15, transport._received, answers[0])
                return []
            return answers

        transport = ScriptedTransport(late_first)
        client = DalyClient(transport, timeout=0.1, retries=1, family=ProtocolFamily.D2)
        return await client._read_words(LIVE.start, LIVE.count), transport, client.stats

    words, transport, stats = run_in_virtual_time(scenario())
    assert words == (3,) * LIVE.count
    assert transport.writes == [_read(LIVE), _read(BALANCER), _read(LIVE)]
    assert (stats.timeouts, stats.syncs, stats.late_answers) == (1, 1, 1)


def test_each_sync_reads_a_block_nobody_is_owed_else_the_most_recently_owed() -> None:
    """A silent module: before each retry the exchange reads a block no answer owed can be taken
    for, a new one each time. Once every block is owed it reads the one owed most recently (its
    answer ends everything owed before), but never the block the request itself is for."""

    async def scenario() -> list[bytes]:
        transport = ScriptedTransport(lambda _data: [])
        client = DalyClient(transport, timeout=0.1, retries=6, family=ProtocolFamily.D2)
        with pytest.raises(DalyTimeoutError):
            await client._read_words(LIVE.start, LIVE.count)
        client.link.retries = 0
        with pytest.raises(DalyTimeoutError):
            await client._read_words(SETTINGS.start, SETTINGS.count)
        return transport.writes

    blocks = (LIVE, BALANCER, EXTENDED, IDENTITY, SETTINGS, SETTINGS, SETTINGS, IDENTITY)
    assert run_in_virtual_time(scenario()) == [_read(block) for block in blocks]


async def test_an_a5_module_is_settled_with_a5_commands() -> None:
    """An A5 module's lost answer is settled with another A5 command (a D2 read would go
    unanswered and cost the retry)."""
    sim = _sim(protocols=frozenset({"a5"}))
    transport = SimTransport(sim, supports_a5=True)
    receive = sim.receive
    sim.receive = lambda data: [] if len(transport.writes) == 1 else receive(data)  # type: ignore[method-assign]
    client = DalyClient(transport, timeout=0.2, retries=1, family=ProtocolFamily.A5)
    status = (await client.poll()).status
    assert status.cell_voltages == sim.cell_voltages()
    commands = [a5.parse(request).command for request in transport.writes]
    assert commands[:3] == [a5.Command.PACK, a5.Command.COUNTS, a5.Command.PACK]
    assert client.stats.syncs == 1


def test_a_new_link_owes_nothing() -> None:
    """What the old link owed cannot come over a new one: the first request on it is sent at once."""

    async def scenario() -> tuple[tuple[int, ...], ScriptedTransport, int]:
        transport = ScriptedTransport(_numbered(lambda n, frame: n == 1))
        client = DalyClient(transport, timeout=0.1, retries=0, family=ProtocolFamily.D2)
        with pytest.raises(DalyTimeoutError):
            await client._read_words(LIVE.start, LIVE.count)
        transport.drop_link()
        return await client._read_words(LIVE.start, LIVE.count), transport, client.stats.syncs

    words, transport, syncs = run_in_virtual_time(scenario())
    assert words == (2,) * LIVE.count
    assert transport.writes == [_read(LIVE), _read(LIVE)]
    assert (syncs, transport.opens) == (0, 2)


def test_after_a_long_silence_the_backlog_leaves_nothing_owed() -> None:
    """A module silent for a whole request (its try and every sync before a retry time out) then
    sends its whole backlog, in order. Once it has come nothing is owed any more: the next read,
    of the block the last syncs asked for, goes out alone and gets its own answer."""

    async def scenario() -> tuple[tuple[int, ...], ScriptedTransport]:
        held: list[bytes] = []
        respond = _numbered()

        def silent(data: bytes) -> list[bytes]:
            answers = respond(data)
            if len(transport.writes) <= 7:
                held.extend(answers)
                return []
            return answers

        transport = ScriptedTransport(silent)
        client = DalyClient(transport, timeout=0.1, retries=6, family=ProtocolFamily.D2)
        with pytest.raises(DalyTimeoutError):
            await client._read_words(LIVE.start, LIVE.count)
        for answer in held:
            transport._received(answer)
        syncs = client.stats.syncs
        words = await client._read_words(SETTINGS.start, SETTINGS.count)
        assert client.stats.syncs == syncs
        return words, transport

    words, transport = run_in_virtual_time(scenario())
    # Every block but the live one, then the most recent of them again and again.
    assert transport.writes[:7] == [
        _read(b) for b in (LIVE, BALANCER, EXTENDED, IDENTITY, SETTINGS, SETTINGS, SETTINGS)
    ]
    assert transport.writes[7:] == [_read(SETTINGS)]
    assert words == (8,) * SETTINGS.count


async def test_a_write_is_answered_while_an_earlier_read_is_still_owed() -> None:
    """A read's answer is lost; a write right after it takes its echo at once (the echo's kind
    names the register, so it is never taken for a read's answer nor dropped as one)."""
    sim = _sim()
    first = True

    def respond(data: bytes) -> list[bytes]:
        nonlocal first
        answers = _answers(sim)(data)
        lost, first = first, False
        return [] if lost else answers

    transport = ScriptedTransport(respond)
    client = DalyClient(transport, timeout=0.1, retries=0, family=ProtocolFamily.D2)
    with pytest.raises(DalyTimeoutError):
        await client.poll()
    assert await client.write_setting(BY_KEY["balancer_enabled"], False) is False
    reg = BY_KEY["balancer_enabled"]
    assert [parse(w, Direction.REQUEST) for w in transport.writes[1:]] == [
        WriteSingle(reg.address, 0),
        ReadRequest(reg.address, 1),
    ]
    assert (client.stats.timeouts, client.stats.unsolicited) == (1, 0)


# --- links that fail, and closing ----------------------------------------------------------------


class _FailingWrite(ScriptedTransport):
    """A link that stays up after a failed write (a BLE write error), until it is closed."""

    def __init__(self, respond: Callable[[bytes], Sequence[bytes]]) -> None:
        super().__init__(respond)
        self.fail_writes = 1

    @override
    async def write(self, data: bytes) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise DalyConnectionError("write failed")
        await super().write(data)


async def test_a_link_that_failed_is_closed_and_opened_afresh() -> None:
    sim = _sim()
    transport = _FailingWrite(_answers(sim))
    client = DalyClient(transport, timeout=0.3, retries=1, family=ProtocolFamily.D2)
    assert (await client.poll()).status.cell_voltages == sim.cell_voltages()
    assert (transport.opens, transport.closes, client.stats.link_errors) == (2, 1, 1)


class _SlowOpen(ScriptedTransport):
    """A link whose open waits for ``gate`` (a connect under way)."""

    def __init__(self) -> None:
        super().__init__(lambda _data: [])
        self.gate = asyncio.Event()
        self.opening = asyncio.Event()

    @override
    async def open(self) -> None:
        self.opening.set()
        await self.gate.wait()
        await super().open()


async def test_an_exchange_closed_while_it_opens_the_link_closes_it_and_sends_nothing() -> None:
    transport = _SlowOpen()
    link = Exchange(transport, timeout=0.3, retries=2, family=ProtocolFamily.D2)
    request = asyncio.create_task(link.request(_read(LIVE), lambda frame: True))
    await transport.opening.wait()
    link.close()
    transport.gate.set()
    with pytest.raises(DalyConnectionError, match="closed"):
        await request
    assert not transport.is_open
    assert transport.writes == []
    assert transport.opens == 1


def test_a_close_fails_the_waiting_request_at_once() -> None:
    async def scenario() -> float:
        asked = asyncio.Event()

        def respond(_data: bytes) -> list[bytes]:
            asked.set()
            return []

        link = Exchange(ScriptedTransport(respond), timeout=10, retries=2, family=ProtocolFamily.D2)
        request = asyncio.create_task(link.request(_read(LIVE), lambda frame: True))
        await asked.wait()
        link.close()
        with pytest.raises(DalyConnectionError, match="closed"):
            await request
        return asyncio.get_running_loop().time()

    assert run_in_virtual_time(scenario()) == 0.0  # no timer ran out: nothing waited


# --- what is reported ----------------------------------------------------------------------------


async def test_a_wrong_answer_is_reported_rather_than_the_silence_after_it() -> None:
    """The first try is answered with a frame that fits nothing, then the module falls silent:
    the error names the wrong answer (the likelier cause), not the last timeout."""
    answered = False

    def respond(_data: bytes) -> list[bytes]:
        nonlocal answered
        wrong, answered = not answered, True
        return [ReadResponse((1, 2)).encode()] if wrong else []

    client = DalyClient(ScriptedTransport(respond), timeout=0.1, retries=1, family=ProtocolFamily.D2)
    with pytest.raises(UnexpectedAnswerError, match="answered 2 registers"):
        await client.poll()
    assert client.stats.timeouts == 2


_LIVE_ANSWER = ReadResponse((3300,) * LIVE.count).encode()
_NOISE = b"\x00\x11\x22"


@pytest.mark.parametrize(
    "junk",
    [_NOISE, _LIVE_ANSWER[:3], _NOISE + _LIVE_ANSWER[:3]],
    ids=["noise", "cut-off answer", "noise then a cut-off answer"],
)
async def test_bytes_that_hold_no_frame_are_reported_and_not_blamed_for_a_later_silence(junk: bytes) -> None:
    answered = False

    def respond(_data: bytes) -> list[bytes]:
        nonlocal answered
        first, answered = not answered, True
        return [junk] if first else []

    client = DalyClient(ScriptedTransport(respond), timeout=0.1, retries=0, family=ProtocolFamily.D2)
    with pytest.raises(UnreadableAnswerError, match=f"{len(junk)} bytes"):
        await client._read_words(LIVE.start, LIVE.count)
    with pytest.raises(DalyTimeoutError):  # silence: not the noise of before
        await client._read_words(BALANCER.start, BALANCER.count)


# --- pacing --------------------------------------------------------------------------------------


class _Line(ScriptedTransport):
    """A link that records how long the exchange holds its reads; ``paced`` makes it as slow as
    the module's UART (each answer comes once the request and the answer crossed the line)."""

    def __init__(self, respond: Callable[[bytes], Sequence[bytes]], *, paced: bool) -> None:
        super().__init__(respond)
        self.paced = paced
        self.holds: list[float] = []

    @override
    def _deliver(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for chunk in self.respond(data):
            loop.call_later(wire_time(len(data) + len(chunk)) if self.paced else 0, self._received, chunk)

    @override
    def hold_reads(self, seconds: float) -> None:
        self.holds.append(seconds)


def _held(block: Block) -> float:
    """How long a read of ``block`` is held on a paced line: until its answer can be complete."""
    return wire_time(8 + 5 + 2 * block.count) - HOLD_MARGIN


def test_a_paced_line_is_held_for_each_answer_and_each_sync() -> None:
    """The first answer shows the line's pace (nothing is held before); then every read, the
    syncs included, is held until its answer can be complete."""

    async def scenario() -> list[float]:
        respond = _numbered(lambda n, frame: n == 4)  # the second poll's first answer is lost
        transport = _Line(respond, paced=True)
        client = DalyClient(transport, timeout=1, retries=1, family=ProtocolFamily.D2)
        await client.poll()
        await client.poll()
        return transport.holds

    assert run_in_virtual_time(scenario()) == [
        _held(EXTENDED),
        _held(BALANCER),
        _held(LIVE),  # lost
        _held(BALANCER),  # the sync
        _held(LIVE),
        _held(EXTENDED),
        _held(BALANCER),
    ]


def test_a_hold_lasts_at_most_half_a_timeout() -> None:
    async def scenario() -> list[float]:
        transport = _Line(_numbered(), paced=True)
        client = DalyClient(transport, timeout=0.2, retries=0, family=ProtocolFamily.D2)
        await client.poll()
        transport.holds.clear()
        await client.poll()
        return transport.holds

    assert _held(LIVE) > 0.1
    assert run_in_virtual_time(scenario()) == [0.1, _held(EXTENDED), _held(BALANCER)]


def test_only_reads_are_held_on_a_paced_line() -> None:
    """A write names no answer length: it is sent without a hold; its read-back is held."""

    async def scenario() -> list[float]:
        transport = _Line(_answers(_sim()), paced=True)
        client = DalyClient(transport, timeout=1, retries=0, family=ProtocolFamily.D2)
        await client.poll()
        transport.holds.clear()
        assert await client.write_setting(BY_KEY["balancer_enabled"], False) is False
        return transport.holds

    assert run_in_virtual_time(scenario()) == [wire_time(8 + 7) - HOLD_MARGIN]


def test_a_fast_line_is_never_held() -> None:
    async def scenario() -> list[float]:
        transport = _Line(_answers(_sim()), paced=False)
        client = DalyClient(transport, timeout=1, retries=0, family=ProtocolFamily.D2)
        await client.poll()
        assert await client.write_setting(BY_KEY["balancer_enabled"], False) is False
        await client.poll()
        return transport.holds

    assert run_in_virtual_time(scenario()) == []
