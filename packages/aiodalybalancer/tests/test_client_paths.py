"""The client's public calls, each checked by value: what it returns, what reaches the wire, and
that the link is released after every call (the mutation survivors of client.py, docs/testing.md)."""

from __future__ import annotations

from typing import override

import pytest

from aiodalybalancer.client import DalyClient, SurveyRange
from aiodalybalancer.errors import DalyTimeoutError, WriteNotAcceptedError
from aiodalybalancer.frames import (
    Direction,
    ExceptionResponse,
    Function,
    ReadRequest,
    ReadResponse,
    WriteSingle,
    parse,
)
from aiodalybalancer.models import Identity, ProtocolFamily
from aiodalybalancer.registers import BALANCER, BY_KEY, EXTENDED
from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig

from .fakes import ScriptedTransport, SimTransport


class _Releasing(SimTransport):
    """Counts the releases (a BLE link in release mode disconnects on each)."""

    def __init__(self, sim: SimulatedBalancer) -> None:
        super().__init__(sim)
        self.releases = 0

    @override
    async def release(self) -> None:
        self.releases += 1


@pytest.fixture
def sim() -> SimulatedBalancer:
    return SimulatedBalancer(SimulatorConfig(cells=16, seed=3), clock=lambda: 0.0)


async def test_every_public_call_releases_the_link_once(sim: SimulatedBalancer) -> None:
    transport = _Releasing(sim)
    client = DalyClient(transport, timeout=0.3, retries=1)
    await client.poll()
    assert transport.releases == 1
    await client.probe()
    assert transport.releases == 2
    await client.read_raw((BALANCER,))
    assert transport.releases == 3
    await client.write_setting(BY_KEY["balancer_enabled"], True)
    assert transport.releases == 4
    await client.survey()
    assert transport.releases == 5


async def test_read_identity_returns_the_modules_identity(sim: SimulatedBalancer) -> None:
    sim.write_word(0x00A9, 0x5631)  # "V1" starts the software version
    identity = await DalyClient(SimTransport(sim), timeout=0.3).read_identity()
    assert identity.software_version is not None
    assert identity.software_version.startswith("V1")


async def test_a_raw_dump_holds_every_word_read() -> None:
    transport = ScriptedTransport(
        lambda data: [ReadResponse((0x0010, 0x0001, 0xFFFF, 0x1234, 0x0000)).encode()]  # the balancer block
    )
    client = DalyClient(transport, timeout=0.3, family=ProtocolFamily.D2)
    assert await client.read_raw((BALANCER,)) == {0xCC: 0x0010, 0xCD: 0x0001, 0xCE: 0xFFFF, 0xCF: 0x1234, 0xD0: 0}


async def test_a_raw_dump_of_an_a5_module_is_empty_and_sends_nothing() -> None:
    transport = ScriptedTransport(lambda _data: [])
    assert await DalyClient(transport, family=ProtocolFamily.A5).read_raw() == {}
    assert transport.writes == []


async def test_a_link_that_may_speak_a5_asks_once_in_a5_before_giving_up() -> None:
    transport = ScriptedTransport(lambda _data: [], supports_a5=True)
    client = DalyClient(transport, timeout=0.05, retries=1)
    with pytest.raises(DalyTimeoutError, match="no answer from scripted to D2 or A5 requests"):
        await client.poll()
    d2_read = ReadRequest(BALANCER.start, BALANCER.count).encode()
    # One try and one retry. The retry first reads another block, so that the first read's late
    # answer cannot be taken for its own (exchange.py); that read went unanswered too, which
    # spends the retry before it repeats the request.
    settle = ReadRequest(EXTENDED.start, EXTENDED.count).encode()
    assert transport.writes[:2] == [d2_read, settle]
    assert [w[:2] for w in transport.writes[2:]] == [b"\xa5\x40"]  # one A5 request, not retried
    assert client.family is None


async def test_the_survey_wakes_the_module_before_the_first_range() -> None:
    reads: list[tuple[int, int]] = []

    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        assert isinstance(frame, ReadRequest)
        reads.append((frame.start, frame.count))
        if frame.start < 62:  # the first range refuses every register
            return [ExceptionResponse(Function.READ, 2).encode()]
        return [ReadResponse((7,) * frame.count).encode()]

    client = DalyClient(ScriptedTransport(respond), timeout=0.05, retries=0, family=ProtocolFamily.D2)
    ranges = await client.survey()
    assert reads[:2] == [(BALANCER.start, BALANCER.count), (0, 62)]
    # A range refused whole is one range, not its halves down to single registers.
    assert ranges[0] == SurveyRange(0, 62, error="module answered function 0x03 with exception code 2")
    assert ranges[1] == SurveyRange(62, 62, (7,) * 62)


async def test_a_silent_range_of_the_survey_names_the_error() -> None:
    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        assert isinstance(frame, ReadRequest)
        if frame.start == 62:
            return []
        return [ReadResponse((7,) * frame.count).encode()]

    client = DalyClient(ScriptedTransport(respond), timeout=0.05, retries=0, family=ProtocolFamily.D2)
    ranges = await client.survey()
    # The error's type, then its message (the exchange words the message).
    assert ranges[1].start == 62
    assert ranges[1].error is not None
    assert ranges[1].error.startswith("DalyTimeoutError: no answer from scripted")


def _sleepy_module(*, takes_the_second_write: bool) -> tuple[ScriptedTransport, list[object]]:
    """A module that drops the write that wakes it (no echo, not taken), then echoes and takes
    writes if asked to; its read-back answers the register's word."""
    words = {BY_KEY["balancer_enabled"].address: 1}
    sent: list[object] = []

    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        sent.append(frame)
        if isinstance(frame, WriteSingle):
            if sum(isinstance(f, WriteSingle) for f in sent) == 1 or not takes_the_second_write:
                return []
            words[frame.register] = frame.value
            return [data]
        assert isinstance(frame, ReadRequest)
        return [ReadResponse((words[frame.start],)).encode()]

    return ScriptedTransport(respond), sent


async def test_a_write_that_woke_the_module_is_sent_once_more() -> None:
    transport, sent = _sleepy_module(takes_the_second_write=True)
    client = DalyClient(transport, timeout=0.05, retries=1, family=ProtocolFamily.D2)
    assert await client.write_setting(BY_KEY["balancer_enabled"], False) is False
    address = BY_KEY["balancer_enabled"].address
    # A lost echo is not asked again: write, read-back (still on), write once more, read-back.
    assert sent == [WriteSingle(address, 0), ReadRequest(address, 1), WriteSingle(address, 0), ReadRequest(address, 1)]


async def test_a_write_sent_twice_that_never_took_is_reported() -> None:
    transport, sent = _sleepy_module(takes_the_second_write=False)
    client = DalyClient(transport, timeout=0.05, retries=1, family=ProtocolFamily.D2)
    with pytest.raises(WriteNotAcceptedError):
        await client.write_setting(BY_KEY["balancer_enabled"], False)
    assert sum(isinstance(frame, WriteSingle) for frame in sent) == 2


async def test_the_client_as_a_context_closes_its_link(sim: SimulatedBalancer) -> None:
    transport = SimTransport(sim)
    client = DalyClient(transport, timeout=0.3)
    async with client as entered:
        assert entered is client
        await client.poll()
        assert transport.is_open
    assert not transport.is_open
    assert transport.closes == 1


async def test_the_identity_of_an_a5_module_is_empty_and_read_without_a_request() -> None:
    transport = ScriptedTransport(lambda _data: [])
    assert await DalyClient(transport, family=ProtocolFamily.A5).read_identity() == Identity()
    assert transport.writes == []


async def test_the_survey_ends_at_register_0x00ff() -> None:
    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        assert isinstance(frame, ReadRequest)
        return [ReadResponse((7,) * frame.count).encode()]

    client = DalyClient(ScriptedTransport(respond), timeout=0.05, retries=0, family=ProtocolFamily.D2)
    ranges = await client.survey()
    # 256 registers in reads of at most 62: 4 × 62 + 8
    assert [(part.start, part.count) for part in ranges] == [(0, 62), (62, 62), (124, 62), (186, 62), (248, 8)]
