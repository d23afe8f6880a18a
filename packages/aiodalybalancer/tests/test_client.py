"""The client over in-memory links to the real simulator, and over scripted links for faults."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aiodalybalancer import a5, client as client_module, exchange
from aiodalybalancer.client import DalyClient
from aiodalybalancer.errors import (
    DalyConnectionError,
    DalyError,
    DalyTimeoutError,
    ExceptionResponseError,
    NotABalancerError,
    UnexpectedAnswerError,
    UnreadableAnswerError,
    ValueOutOfRangeError,
    WriteNotAcceptedError,
)
from aiodalybalancer.frames import (
    Direction,
    ExceptionResponse,
    Function,
    ReadRequest,
    ReadResponse,
    WriteSingle,
    parse,
)
from aiodalybalancer.models import ProtocolFamily
from aiodalybalancer.registers import BALANCER, BY_KEY, LIVE
from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig

from .fakes import ScriptedTransport, SimTransport
from .leaks import until


def _client(transport: ScriptedTransport, **kwargs: float) -> DalyClient:
    return DalyClient(transport, timeout=kwargs.get("timeout", 0.3), retries=int(kwargs.get("retries", 1)))


@pytest.fixture
def sim() -> SimulatedBalancer:
    return SimulatedBalancer(SimulatorConfig(cells=16, seed=3), clock=lambda: 0.0)


async def test_status_matches_the_simulator(sim: SimulatedBalancer) -> None:
    client = _client(SimTransport(sim))
    status = (await client.poll()).status
    assert status.protocol is ProtocolFamily.D2
    assert status.cell_count == 16
    assert status.cell_voltages == sim.cell_voltages()
    assert status.pack_voltage == sim.value("pack_voltage")
    assert status.balancer_enabled is True
    assert len(status.temperatures) == 1


async def test_each_poll_sends_exactly_three_reads(sim: SimulatedBalancer) -> None:
    transport = SimTransport(sim)
    client = _client(transport)
    await client.poll()
    transport.writes.clear()
    await client.poll()
    requests = [parse(w, Direction.REQUEST) for w in transport.writes]
    assert [(r.start, r.count) for r in requests if isinstance(r, ReadRequest)] == [
        (LIVE.start, LIVE.count),
        (0x003E, 9),
        (BALANCER.start, BALANCER.count),
    ]
    settings_poll = await client.poll(settings=True)
    assert settings_poll.settings is not None
    assert settings_poll.settings.string_count == 16


async def test_identity_and_probe(sim: SimulatedBalancer) -> None:
    client = _client(SimTransport(sim))
    probe = await client.probe()
    assert probe.identity.software_version == sim.value("software_version")
    assert probe.identity.password == sim.value("password")
    assert probe.settings.battery_type == "lifepo4"


async def test_out_of_range_write_never_reaches_the_wire(sim: SimulatedBalancer) -> None:
    transport = SimTransport(sim)
    client = _client(transport)
    with pytest.raises(ValueOutOfRangeError):
        await client.write_setting(BY_KEY["balance_start_voltage"], 9.9)
    with pytest.raises(ValueOutOfRangeError):
        await client.write_setting(BY_KEY["pack_voltage"], 50)
    assert transport.writes == []


async def test_verified_write(sim: SimulatedBalancer) -> None:
    transport = SimTransport(sim)
    client = _client(transport)
    assert await client.write_setting(BY_KEY["balance_start_voltage"], 3.45) == 3.45
    assert sim.value("balance_start_voltage") == 3.45
    sent = [parse(w, Direction.REQUEST) for w in transport.writes]
    reg = BY_KEY["balance_start_voltage"]
    # The first request finds the protocol family; then the write and its read-back.
    assert sent == [
        ReadRequest(BALANCER.start, BALANCER.count),
        WriteSingle(reg.address, 3450),
        ReadRequest(reg.address, 1),
    ]
    assert await client.write_setting(BY_KEY["balancer_enabled"], False) is False
    assert sim.value("balancer_enabled") is False
    # The module's echo is byte-identical to the request: it must be taken as the answer,
    # not dropped as an adapter echo (which would wait out the timeout on every write).
    assert client.stats.timeouts == 0


async def test_a_write_the_module_ignores_is_reported(sim: SimulatedBalancer) -> None:
    sim.ignore_writes.add("sleep_time")
    before = sim.value("sleep_time")
    client = _client(SimTransport(sim))
    with pytest.raises(WriteNotAcceptedError) as err:
        await client.write_setting(BY_KEY["sleep_time"], 65535)
    assert err.value.actual == before


async def test_a_write_without_echo_that_took_is_accepted() -> None:
    words = {0x00CF: 1}

    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        if isinstance(frame, WriteSingle):
            words[frame.register] = frame.value
            return []  # the echo is lost
        assert isinstance(frame, ReadRequest)
        return [ReadResponse(tuple(words.get(a, 0) for a in range(frame.start, frame.start + frame.count))).encode()]

    client = _client(ScriptedTransport(respond))
    client.family = ProtocolFamily.D2
    assert await client.write_setting(BY_KEY["balancer_enabled"], False) is False


async def test_a_write_without_echo_that_did_not_take_is_reported() -> None:
    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        if isinstance(frame, WriteSingle):
            return []
        assert isinstance(frame, ReadRequest)
        return [ReadResponse((1,) * frame.count).encode()]

    client = _client(ScriptedTransport(respond))
    client.family = ProtocolFamily.D2
    with pytest.raises(WriteNotAcceptedError):
        await client.write_setting(BY_KEY["balancer_enabled"], False)


async def test_exception_frames_raise() -> None:
    def respond(data: bytes) -> list[bytes]:
        frame = parse(data, Direction.REQUEST)
        function = Function.READ if isinstance(frame, ReadRequest) else Function.WRITE_SINGLE
        return [ExceptionResponse(function, 2).encode()]

    client = _client(ScriptedTransport(respond))
    client.family = ProtocolFamily.D2
    with pytest.raises(ExceptionResponseError):
        await client.poll()
    with pytest.raises(ExceptionResponseError):
        await client.write_setting(BY_KEY["balancer_enabled"], True)


async def test_silent_module_times_out_after_bounded_retries() -> None:
    transport = ScriptedTransport(lambda _data: [])
    client = _client(transport, timeout=0.05, retries=2)
    with pytest.raises(DalyTimeoutError):
        await client.poll()
    assert len(transport.writes) == 3
    assert client.stats.timeouts == 3
    assert client.stats.retries == 2


async def test_half_duplex_echo_is_not_taken_for_the_answer(sim: SimulatedBalancer) -> None:
    client = _client(SimTransport(sim, echo=True))
    status = (await client.poll()).status
    assert status.cell_voltages == sim.cell_voltages()
    assert await client.write_setting(BY_KEY["balance_start_delta"], 0.03) == 0.03
    assert sim.value("balance_start_delta") == 0.03
    assert client.stats.timeouts == 0


async def test_a_write_during_a_poll_waits_for_it(sim: SimulatedBalancer) -> None:
    transport = SimTransport(sim)
    client = _client(transport)
    await client.poll()
    transport.writes.clear()
    poll = asyncio.create_task(client.poll())
    await asyncio.sleep(0)
    write = asyncio.create_task(client.write_setting(BY_KEY["balance_start_voltage"], 3.4))
    other = asyncio.create_task(client.write_setting(BY_KEY["balance_start_delta"], 0.025))
    await asyncio.gather(poll, write, other)
    kinds = [type(parse(w, Direction.REQUEST)).__name__ for w in transport.writes]
    # Three poll reads, then each write with its read-back, never interleaved.
    assert kinds == ["ReadRequest"] * 3 + ["WriteSingle", "ReadRequest"] * 2


async def test_stale_and_wrong_size_frames_are_ignored(sim: SimulatedBalancer) -> None:
    stale = ReadResponse((1, 2)).encode()

    def respond(data: bytes) -> list[bytes]:
        return [stale, *[chunk for reply in sim.receive(data) for chunk in reply.chunks]]

    client = _client(ScriptedTransport(respond))
    status = (await client.poll()).status
    assert status.cell_voltages == sim.cell_voltages()
    assert client.stats.unsolicited >= 3


async def test_link_lost_mid_request_is_retried(sim: SimulatedBalancer) -> None:
    transport = SimTransport(sim)
    calls = {"n": 0}
    original = transport._deliver

    def flaky(data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            transport.drop_link()
            return
        original(data)

    transport._deliver = flaky  # type: ignore[method-assign]
    client = _client(transport)
    status = (await client.poll()).status
    assert status.cell_count == 16
    assert client.stats.link_errors == 1
    assert transport.opens == 2


async def test_unopenable_link_raises_connection_error() -> None:
    transport = ScriptedTransport(lambda _data: [])
    transport.fail_open = True
    client = _client(transport, retries=0)
    with pytest.raises(DalyConnectionError):
        await client.poll()


async def test_bms_is_not_a_balancer(sim: SimulatedBalancer) -> None:
    sim.write_word(BY_KEY["balancer_enabled"].address, 0xFFFF)
    client = _client(SimTransport(sim))
    with pytest.raises(NotABalancerError):
        await client.probe()


async def test_raw_dump_and_release(sim: SimulatedBalancer) -> None:
    transport = SimTransport(sim)
    client = _client(transport)
    dump = await client.read_raw()
    assert dump[BY_KEY["balancer_enabled"].address] == 1
    assert client.raw[0x0031] == 16
    await client.close()
    assert not transport.is_open


async def test_password_is_never_logged(sim: SimulatedBalancer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = _client(SimTransport(sim))
    await client.probe()
    await client.read_raw()
    assert "123456" not in caplog.text


async def test_a5_module_is_read_only_and_d2_fallback(sim: SimulatedBalancer) -> None:
    # A still clock: the cells must not drift between the read and the comparison.
    a5_sim = SimulatedBalancer(SimulatorConfig(cells=8, protocols=frozenset({"a5"}), seed=2), clock=lambda: 0.0)
    client = _client(SimTransport(a5_sim, supports_a5=True), timeout=0.1)
    status = (await client.poll()).status
    assert client.family is ProtocolFamily.A5
    assert status.cell_voltages == a5_sim.cell_voltages()
    settings = (await client.poll(settings=True)).settings
    assert settings.balance_start_voltage == a5_sim.value("balance_start_voltage")
    with pytest.raises(DalyError):
        await client.write_setting(BY_KEY["balancer_enabled"], False)
    # Without A5 support on the link (BLE), silence is a timeout.
    ble_like = _client(SimTransport(a5_sim), timeout=0.05, retries=0)
    with pytest.raises(DalyTimeoutError):
        await ble_like.poll()


# --- closed for good (issue 14, item 3) -----------------------------------------------------------


async def test_close_fails_the_waiting_request_and_never_reopens() -> None:
    """A request that waits for its answer fails at once when the client is closed; no retry and
    no later request opens the link again."""
    asked = asyncio.Event()

    def respond(_data: bytes) -> list[bytes]:
        asked.set()
        return []

    transport = ScriptedTransport(respond)
    client = _client(transport, timeout=5, retries=2)
    reading = asyncio.create_task(client.poll())
    await asked.wait()
    await client.close()
    with pytest.raises(DalyConnectionError, match="closed"):
        await reading
    with pytest.raises(DalyConnectionError, match="closed"):
        await client.write_setting(BY_KEY["balance_start_delta"], 0.03)
    assert transport.opens == 1
    assert len(transport.writes) == 1
    assert not transport.is_open


class _SlowOpen(ScriptedTransport):
    """A link whose open waits for ``gate`` (a connect under way)."""

    def __init__(self) -> None:
        super().__init__(lambda _data: [])
        self.gate = asyncio.Event()
        self.opening = asyncio.Event()

    async def open(self) -> None:
        self.opening.set()
        await self.gate.wait()
        await super().open()


@pytest.mark.parametrize("connected", [True, False], ids=["connect-ends", "connect-hangs"])
async def test_close_while_the_link_is_being_opened(connected: bool) -> None:
    """Closed while a request is still opening the link: the request closes what it opened and
    sends nothing. The close waits for it a bounded time (one answer timeout)."""
    transport = _SlowOpen()
    client = _client(transport, timeout=0.1, retries=2)
    reading = asyncio.create_task(client.poll())
    await transport.opening.wait()
    if connected:
        asyncio.get_running_loop().call_soon(transport.gate.set)
    await client.close()
    transport.gate.set()
    with pytest.raises(DalyConnectionError, match="closed"):
        await reading
    assert transport.writes == []
    assert not transport.is_open
    assert transport.opens == 1


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (ReadResponse((1, 2, 3)), "3 registers"),
        (ReadRequest(0x00A3, 2), "2 registers"),
        (WriteSingle(0x008A, 600), "a write of register 0x008A"),
        (ExceptionResponse(Function.WRITE_SINGLE, 2), "an exception to function 0x06"),
        (a5.A5Frame(a5.REPLY_ADDRESS, a5.Command.PACK), "an A5 frame (command 0x90)"),
        (object(), "a object frame"),
    ],
)
def test_what_answered_is_named(frame: object, words: str) -> None:
    """Error messages name what answered: a register count, a write, an exception, an A5 frame."""
    assert exchange._describe(frame) == words


async def test_an_a5_request_answered_by_a_d2_frame_is_named() -> None:
    """A wired module that answers an A5 request with a D2 frame: the error names both."""
    transport = ScriptedTransport(lambda _data: [ReadResponse((1,)).encode()], supports_a5=True)
    client = _client(transport, timeout=0.05, retries=0)
    client.family = ProtocolFamily.A5
    with pytest.raises(UnreadableAnswerError):
        await client.poll()
    client = _client(transport, timeout=0.05, retries=0)  # nothing owed: the request itself is sent
    with pytest.raises(
        UnexpectedAnswerError, match=r"answered 1 registers to a request for an A5 frame \(command 0x90\)"
    ):
        await client._a5_exchange(a5.Command.PACK, retries=0)


# --- the register survey ----------------------------------------------------------------------

#: Registers the scripted module refuses with an exception, and the read it leaves unanswered.
_REFUSED = range(0x0080, 0x0084)
_SILENT_READ = (186, 62)


def _surveyed(asleep_from: int | None = None) -> tuple[ScriptedTransport, list[tuple[int, int]]]:
    """A module that answers word ``address + 1000``, refuses ``_REFUSED`` with an exception,
    never answers the read ``_SILENT_READ``, and falls asleep at a read starting at ``asleep_from``."""
    reads: list[tuple[int, int]] = []
    asleep = False

    def respond(data: bytes) -> list[bytes]:
        nonlocal asleep
        frame = parse(data, Direction.REQUEST)
        assert isinstance(frame, ReadRequest)  # the survey never writes
        reads.append((frame.start, frame.count))
        asleep = asleep or frame.start == asleep_from
        addresses = range(frame.start, frame.start + frame.count)
        if asleep or (frame.start, frame.count) == _SILENT_READ:
            return []
        if any(address in _REFUSED for address in addresses):
            return [ExceptionResponse(Function.READ, 2).encode()]
        return [ReadResponse(tuple(address + 1000 for address in addresses)).encode()]

    return ScriptedTransport(respond), reads


async def test_survey_reads_every_register_once_and_goes_on_past_failures() -> None:
    """Every address 0x0000–0x00FF is in exactly one range; reads ask for at most 62 registers;
    a refused range is split down to what answers, a silent one is recorded and the survey goes on."""
    transport, reads = _surveyed()
    client = DalyClient(transport, timeout=0.05, retries=0)
    ranges = await client.survey()

    assert all(count <= client_module.SURVEY_READ for _, count in reads)
    covered = [address for part in ranges for address in range(part.start, part.start + part.count)]
    assert covered == list(range(client_module.SURVEY_END))
    refused = [
        a
        for part in ranges
        if part.error and "exception" in part.error
        for a in range(part.start, part.start + part.count)
    ]
    assert refused == list(_REFUSED)
    (silent,) = [part for part in ranges if part.error and "exception" not in part.error]
    assert (silent.start, silent.count) == _SILENT_READ
    assert silent.error is not None and silent.error.startswith("DalyTimeoutError")
    for part in ranges:
        if part.error is None:
            assert part.words == tuple(a + 1000 for a in range(part.start, part.start + part.count))
    assert ranges[-1].words  # the range after the silent one was read


async def test_survey_starts_no_request_after_its_time_limit() -> None:
    """A survey that runs out of time stops asking; the ranges left are recorded as not
    surveyed, naming the limit, so the result still covers every address once."""
    transport, reads = _surveyed()
    client = DalyClient(transport, timeout=0.05, retries=0)
    ranges = await client.survey(time_limit=0.0)

    assert set(reads) == {(BALANCER.start, BALANCER.count)}  # detection and wake-up, nothing after the limit
    assert [(part.start, part.count) for part in ranges] == [
        (start, min(client_module.SURVEY_READ, client_module.SURVEY_END - start))
        for start in range(0, client_module.SURVEY_END, client_module.SURVEY_READ)
    ]
    assert {part.error for part in ranges} == {"not surveyed: the survey's time limit of 0 s ran out"}


async def test_survey_lets_other_requests_in_between_its_own() -> None:
    """The survey holds the client for one request at a time: a poll started during it is
    answered before the survey ends."""
    transport, reads = _surveyed()
    # Everything here is answered: a timeout that no answer needs keeps a loaded machine's
    # scheduling out of the result.
    client = DalyClient(transport, timeout=2, retries=0)
    survey = asyncio.create_task(client.survey())
    assert await until(lambda: len(reads) >= 2)
    await client.poll()
    assert not survey.done()
    await survey


async def test_survey_of_a_module_that_falls_asleep_ends_with_the_timeout() -> None:
    transport, reads = _surveyed(asleep_from=62)
    client = DalyClient(transport, timeout=0.05, retries=0)
    with pytest.raises(DalyTimeoutError):
        await client.survey()
    assert reads[-1] == (BALANCER.start, BALANCER.count)  # it checked the module still answers
    assert all(start <= 62 or start == BALANCER.start for start, _ in reads)  # then stopped


async def test_survey_of_an_a5_module_sends_nothing() -> None:
    transport, reads = _surveyed()
    client = DalyClient(transport, timeout=0.05, retries=0, family=ProtocolFamily.A5)
    with pytest.raises(DalyError, match="A5"):
        await client.survey()
    assert reads == []
    assert transport.writes == []
