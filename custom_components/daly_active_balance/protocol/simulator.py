"""A simulated DALY Smart Active Balance Module, built on the same register table.

It is a second implementation of the device, not a mock: it parses the host's real frames with
the same re-assembler, answers from a register bank initialised from ``registers.REGISTERS``,
runs a small physical model (drifting cells, balancing under the manual's two conditions,
sleeping after its sleep time) and is reached through real OS objects (a pty, a TCP socket) or
the stand-in BLE client in ``ble_standin.py``. Faults can be injected per reply.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
from enum import StrEnum
import itertools
import math
import os
import random
import time
import tty
from typing import Final

from . import a5
from .frames import Direction, ReadRequest, ReadResponse, WriteMultiple, WriteMultipleAck, WriteSingle
from .registers import (
    BY_KEY,
    REGISTERS,
    SLEEP_NEVER,
    BatteryType,
    Block,
    DecodedValue,
    Register,
    default_words,
)
from .stream import D2Framing, FrameStream

#: Registers the host may write with 0x06 (everything the table marks writable).
_WRITABLE: Final = {reg.address: reg for reg in REGISTERS if reg.writable}
#: The app's clock registers (write-multiple 0x00D4×3, reference §4.6).
_RTC_START: Final = 0x00D4
_RTC_COUNT: Final = 3
_BANK_SIZE: Final = 0x100

#: Typical resting cell voltage (mV) and balance turn-on voltage (mV) per chemistry.
_CELL_MV: Final = {BatteryType.LIFEPO4: 3320.0, BatteryType.LI_ION: 3850.0, BatteryType.LTO: 2450.0}
_BALANCE_START_MV: Final = {BatteryType.LIFEPO4: 3300, BatteryType.LI_ION: 3900, BatteryType.LTO: 2400}
#: The Dual UART model balances inside an operating window (manual: 3.0–3.7 V by default) with a
#: 50 mV default difference. Which registers hold the window is unknown, so it is fixed here.
_DUAL_WINDOW_MV: Final = (3000, 3700)
_DUAL_DELTA_MV: Final = 50
#: Below these pack voltages the module does not balance (manual: 2 V, 1.5 V for Dual UART).
_MIN_PACK_MV: Final = {"uart_rs485": 2000, "dual_uart": 1500}
#: Charge moved by ~1 A: the spread shrinks by this many mV per second while balancing.
_BALANCE_MV_PER_S: Final = 0.05
_AMBIENT_C: Final = 28.0

MODELS: Final = ("uart_rs485", "dual_uart")


class Fault(StrEnum):
    """What can go wrong with one reply."""

    DROP = "drop"
    CORRUPT = "corrupt"
    SPLIT = "split"
    MERGE = "merge"
    DELAY = "delay"
    GARBAGE = "garbage"


@dataclass
class FaultPlan:
    """Fault injection: with probability ``rate`` a reply gets one fault of ``kinds``."""

    rate: float = 0.0
    kinds: tuple[Fault, ...] = tuple(Fault)
    delay: float = 2.0
    seed: int | None = None


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulated module is built."""

    cells: int = 16
    battery_type: BatteryType = BatteryType.LIFEPO4
    model: str = "uart_rs485"
    temperature_sensors: int = 1
    protocols: frozenset[str] = frozenset({"d2"})
    pace_baud: int | None = None
    response_delay: float = 0.0
    seed: int | None = 0
    faults: FaultPlan = field(default_factory=FaultPlan)


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes to send back: ``chunks`` (a pause between them), starting after ``delay`` seconds."""

    chunks: tuple[bytes, ...]
    delay: float = 0.0

    @property
    def data(self) -> bytes:
        """All bytes of the reply."""
        return b"".join(self.chunks)


@dataclass
class SimulatorStats:
    """What the simulator saw and did."""

    requests: int = 0
    replies: int = 0
    writes: int = 0
    refused_writes: int = 0
    faults: Counter[str] = field(default_factory=Counter)


class SimulatedBalancer:
    """The module: a register bank, a physical model and a protocol front end."""

    def __init__(self, config: SimulatorConfig | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Build a fresh module as it would leave the factory, set to ``config``."""
        config = config or SimulatorConfig()
        if not 3 <= config.cells <= 24:
            raise ValueError(f"cells must be 3..24, got {config.cells}")
        if not 0 <= config.temperature_sensors <= 4:
            raise ValueError(f"temperature_sensors must be 0..4, got {config.temperature_sensors}")
        if config.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {config.model!r}")
        self.config = config
        self._clock = clock
        self._rng = random.Random(config.seed)
        self.faults = config.faults
        self._fault_rng = random.Random(config.faults.seed)
        self.stats = SimulatorStats()
        self.ignore_writes: set[str] = set()
        self.silent = False
        self._asleep = False
        self._d2: FrameStream[object] | None = (
            FrameStream(D2Framing(Direction.REQUEST)) if "d2" in config.protocols else None
        )
        self._a5: FrameStream[a5.A5Frame] | None = FrameStream(a5.A5Framing()) if "a5" in config.protocols else None
        self._previous: bytes | None = None
        self.words = [0xFFFF] * _BANK_SIZE
        for address in (*range(0x0057, 0x0063), 0x00D7, *range(0x0080, 0x00A9)):
            self.words[address] = 0
        for reg in REGISTERS:
            self.words[reg.address : reg.end] = default_words(reg)
        self._set("string_count", config.cells)
        self._set("register_00ce", config.cells)
        self._set("temperature_sensor_setting", config.temperature_sensors)
        self._set("battery_type", tuple(BatteryType).index(config.battery_type))
        self._set("balance_start_voltage", _BALANCE_START_MV[config.battery_type])
        if config.model == "dual_uart":
            self._set("balance_start_delta", _DUAL_DELTA_MV)
        base = _CELL_MV[config.battery_type]
        self._centres = [base + self._rng.uniform(-6, 6) for _ in range(config.cells)]
        self._cells = list(self._centres)
        self._pinned: dict[int, float] = {}
        self._temps = [_AMBIENT_C + self._rng.uniform(-1, 1) for _ in range(config.temperature_sensors)]
        self._balancing = False
        now = clock()
        self._last_step = now
        self._last_traffic = now
        self._evaluate_balancing()
        self._publish()

    # --- register bank ----------------------------------------------------------------------

    def _set(self, key: str, raw: int) -> None:
        self.words[BY_KEY[key].address] = raw

    def _raw(self, key: str) -> int:
        return self.words[BY_KEY[key].address]

    def read_word(self, address: int) -> int:
        """The raw word at ``address``."""
        return self.words[address]

    def write_word(self, address: int, value: int) -> None:
        """Set a raw word directly, bypassing validation (test control)."""
        self.words[address] = value & 0xFFFF

    def value(self, key: str) -> DecodedValue:
        """The decoded value of register ``key``, as a host would decode it."""
        reg = BY_KEY[key]
        return Block(key, reg.address, reg.count).decode(self.words[reg.address : reg.end])[key]

    def snapshot(self) -> dict[str, DecodedValue]:
        """Every register decoded at this instant (ground truth)."""
        return {key: self.value(key) for key in BY_KEY}

    def cell_voltages(self) -> tuple[float, ...]:
        """The real cells' voltages in V, exactly as the module reports them."""
        reg = BY_KEY["cell_voltages"]
        return tuple(round(w * reg.scale, 3) for w in self.words[reg.address : reg.address + self.config.cells])

    def set_cell_voltage(self, cell: int, volts: float) -> None:
        """Pin cell ``cell`` (1-based) at ``volts``: it no longer drifts."""
        if not 1 <= cell <= self.config.cells:
            raise ValueError(f"cell must be 1..{self.config.cells}")
        self._pinned[cell - 1] = volts * 1000
        self._evaluate_balancing()
        self._publish()

    def release_cell(self, cell: int) -> None:
        """Let a pinned cell drift again from its normal value."""
        self._pinned.pop(cell - 1, None)
        self._publish()

    @property
    def asleep(self) -> bool:
        """True while the module sleeps (no traffic for longer than its sleep time)."""
        self._check_sleep(self._clock())
        return self._asleep

    def _check_sleep(self, now: float) -> None:
        sleep = self._raw("sleep_time")
        if sleep != SLEEP_NEVER and now - self._last_traffic > sleep:
            self._asleep = True

    # --- physics ----------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Run the physical model for ``seconds``."""
        if seconds <= 0:
            return
        self._last_step += seconds
        self._step(seconds)

    def _catch_up(self, now: float) -> None:
        elapsed = now - self._last_step
        if elapsed > 0:
            self._last_step = now
            self._step(min(elapsed, 3600.0))

    def _step(self, dt: float) -> None:
        rng = self._rng
        noise = 0.4 * math.sqrt(dt)
        pull = min(1.0, 0.05 * dt)
        for i, centre in enumerate(self._centres):
            value = self._cells[i] + rng.gauss(0, noise) + (centre - self._cells[i]) * pull
            self._cells[i] = min(max(value, centre - 8), centre + 8)
        self._temps = [t + (_AMBIENT_C - t) * pull + rng.gauss(0, 0.05 * math.sqrt(dt)) for t in self._temps]
        if self._balancing:
            cells = self._effective_cells()
            high = max(range(len(cells)), key=cells.__getitem__)
            low = min(range(len(cells)), key=cells.__getitem__)
            move = min(_BALANCE_MV_PER_S * dt, (cells[high] - cells[low]) / 2)
            for index, sign in ((high, -1), (low, 1)):
                self._centres[index] += sign * move
                self._cells[index] += sign * move
        self._evaluate_balancing()
        self._publish()

    def _effective_cells(self) -> list[float]:
        return [self._pinned.get(i, v) for i, v in enumerate(self._cells)]

    def _evaluate_balancing(self) -> None:
        """The manual's two conditions, the switch, and the minimum pack voltage."""
        cells = [round(v) for v in self._effective_cells()]
        high, low = max(cells), min(cells)
        delta_ok = high - low >= self._raw("balance_start_delta")
        if self.config.model == "dual_uart":
            lo, hi = _DUAL_WINDOW_MV
            voltage_ok = lo <= high <= hi
        else:
            voltage_ok = high >= self._raw("balance_start_voltage")
        pack_ok = sum(cells) >= _MIN_PACK_MV[self.config.model]
        self._balancing = self._raw("balancer_enabled") == 1 and voltage_ok and delta_ok and pack_ok

    def _publish(self) -> None:
        """Write the live, extended and balancer registers from the model's state."""
        words = self.words
        cells = [max(0, min(0xFFFF, round(v))) for v in self._effective_cells()]
        n = len(cells)
        start = BY_KEY["cell_voltages"].address
        words[start : start + 32] = cells + [0] * (32 - n)
        high, low = max(cells), min(cells)
        pack_dv = round(sum(cells) / 100)
        average = round(sum(cells) / n)
        temps = [max(0, round(t) + 40) for t in self._temps]
        slots = temps + [0] * (6 - len(temps)) + [pack_dv, average]  # slots 7/8: pack V, average mV
        words[BY_KEY["temperatures"].address : BY_KEY["temperatures"].end] = slots
        self._set("pack_voltage", pack_dv)
        self._set("max_cell_voltage", high)
        self._set("min_cell_voltage", low)
        self._set("max_temperature", max(temps) if temps else 0)
        self._set("min_temperature", min(temps) if temps else 0)
        self._set("cell_count", n)
        self._set("temperature_sensor_count", len(temps))
        self._set("average_cell_voltage", average)
        self._set("cell_delta", high - low)
        self._set("balancing", int(self._balancing))
        bitmap = 0
        if self._balancing:
            bitmap = 1 << cells.index(high) | 1 << cells.index(low)
        words[BY_KEY["balancing_cells"].address] = bitmap & 0xFFFF
        words[BY_KEY["balancing_cells"].address + 1] = bitmap >> 16
        # [INF] 0x0040 = 30000 + mA; the sign of the balancer's transfer current is unknown.
        self._set("balance_current", 31000 if self._balancing else 30000)

    # --- protocol ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Reply]:
        """Take bytes from the host; return the replies now due (after faults)."""
        now = self._clock()
        self._catch_up(now)
        requests = self._d2.feed(data) if self._d2 is not None else []
        a5_requests = self._a5.feed(data) if self._a5 is not None else []
        if not (requests or a5_requests) or self.silent:
            return []
        self._check_sleep(now)
        self._last_traffic = now
        if self._asleep:
            self._asleep = False  # traffic wakes it, but this request is lost
            return []
        replies: list[Reply] = []
        for request in requests:
            self.stats.requests += 1
            raw = self._answer(request)
            if raw is not None:
                replies.extend(self._deliver(raw))
        for a5_request in a5_requests:
            if a5_request.is_reply:
                continue
            self.stats.requests += 1
            frames = a5.answer(a5_request, self._a5_state())
            if frames:
                replies.extend(self._deliver(b"".join(frames)))
        return replies

    def _answer(self, request: object) -> bytes | None:
        if isinstance(request, ReadRequest):
            if request.start + request.count > _BANK_SIZE:
                return None
            return ReadResponse(tuple(self.words[request.start : request.start + request.count])).encode()
        if isinstance(request, WriteSingle):
            return self._write(request)
        if isinstance(request, WriteMultiple) and request.start == _RTC_START and len(request.values) == _RTC_COUNT:
            self.words[_RTC_START : _RTC_START + _RTC_COUNT] = request.values
            return WriteMultipleAck(request.start, len(request.values)).encode()
        return None

    def _write(self, request: WriteSingle) -> bytes | None:
        """Accept a valid value for a writable register; refuse anything else silently."""
        reg: Register | None = _WRITABLE.get(request.register)
        if reg is None or not self._valid(reg, request.value):
            self.stats.refused_writes += 1
            return None
        self.stats.writes += 1
        if reg.key not in self.ignore_writes:
            self.words[reg.address] = request.value
            self._evaluate_balancing()
            self._publish()
        return request.encode()

    @staticmethod
    def _valid(reg: Register, raw: int) -> bool:
        decoded = reg.decode_word(raw)
        if decoded is None:
            return False
        try:
            return reg.encode(decoded) == raw
        except ValueError:
            return False

    def _a5_state(self) -> a5.A5DeviceState:
        cells = self.cell_voltages()
        bitmap = self.words[BY_KEY["balancing_cells"].address] | self.words[BY_KEY["balancing_cells"].address + 1] << 16
        temperatures = tuple(float(t) for t in self.value("temperatures")[: len(self._temps)])  # type: ignore[index,arg-type]
        return a5.A5DeviceState(
            cell_voltages=cells,
            temperatures=temperatures,
            pack_voltage=float(self.value("pack_voltage")),  # type: ignore[arg-type]
            balancing_cells=tuple(bool(bitmap >> i & 1) for i in range(len(cells))),
            balance_start_voltage=float(self.value("balance_start_voltage")),  # type: ignore[arg-type]
            balance_start_delta=float(self.value("balance_start_delta")),  # type: ignore[arg-type]
        )

    def _deliver(self, raw: bytes) -> list[Reply]:
        """Apply at most one fault to a reply."""
        previous, self._previous = self._previous, raw
        delay = self.config.response_delay
        plan = self.faults
        rng = self._fault_rng
        if plan.rate <= 0 or rng.random() >= plan.rate or not plan.kinds:
            self.stats.replies += 1
            return [Reply((raw,), delay)]
        fault = rng.choice(plan.kinds)
        self.stats.faults[fault.value] += 1
        if fault is Fault.DROP:
            return []
        self.stats.replies += 1
        if fault is Fault.CORRUPT:
            data = bytearray(raw)
            position = rng.randrange(len(data))
            data[position] ^= 1 << rng.randrange(8)  # one flipped bit always breaks CRC-16
            return [Reply((bytes(data),), delay)]
        if fault is Fault.SPLIT:
            cuts = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.randint(1, 3))))
            bounds = [0, *cuts, len(raw)]
            return [Reply(tuple(raw[a:b] for a, b in itertools.pairwise(bounds)), delay)]
        if fault is Fault.MERGE:
            # Another valid frame in the same chunk, as when the app pipelined requests.
            return [Reply((raw + (previous or raw),), delay)]
        if fault is Fault.DELAY:
            return [Reply((raw,), delay + plan.delay)]
        noise = b"AT+PRODUCTINFO=NoPID\r\n"
        return [Reply((noise + raw if rng.random() < 0.5 else raw + noise,), delay)]


# --- servers ----------------------------------------------------------------------------------


class _Link:
    """One connection's sender: replies in order, with delays, split pauses and baud pacing."""

    def __init__(self, sim: SimulatedBalancer, write: Callable[[bytes], None]) -> None:
        self._sim = sim
        self._write = write
        self._queue: asyncio.Queue[tuple[Reply, float]] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._send())

    def feed(self, data: bytes) -> None:
        baud = self._sim.config.pace_baud
        wire_in = len(data) * 10 / baud if baud else 0.0
        for reply in self._sim.receive(data):
            self._queue.put_nowait((reply, wire_in))
            wire_in = 0.0

    async def _send(self) -> None:
        baud = self._sim.config.pace_baud
        while True:
            reply, wire_in = await self._queue.get()
            if reply.delay + wire_in > 0:
                await asyncio.sleep(reply.delay + wire_in)
            for index, chunk in enumerate(reply.chunks):
                if index:
                    await asyncio.sleep(0.02)
                if not baud:
                    self._write(chunk)
                    continue
                loop = asyncio.get_running_loop()
                start = loop.time()
                for offset in range(0, len(chunk), 8):
                    self._write(chunk[offset : offset + 8])
                    target = start + (offset + len(chunk[offset : offset + 8])) * 10 / baud
                    wait = target - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class SimulatorServer:
    """A running server; ``url`` is what a client opens."""

    def __init__(self, url: str, closer: Callable[[], object], port: int = 0, path: str | None = None) -> None:
        """Keep how to stop it."""
        self.url = url
        self.port = port
        self.path = path
        self._closer = closer

    async def close(self) -> None:
        """Stop serving and release every socket, descriptor and task."""
        result = self._closer()
        if asyncio.iscoroutine(result):
            await result


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, sim: SimulatedBalancer, links: set[_Link]) -> None:
        self._sim = sim
        self._links = links
        self._link: _Link | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._link = _Link(self._sim, self._send)
        self._links.add(self._link)

    def _send(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        assert self._link is not None
        self._link.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._link is not None:
            self._links.discard(self._link)
            asyncio.get_running_loop().create_task(self._link.close())


async def serve_tcp(sim: SimulatedBalancer, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
    """Serve the simulator on TCP; open it as ``socket://HOST:PORT``."""
    links: set[_Link] = set()
    protocols: list[_TcpProtocol] = []

    def factory() -> _TcpProtocol:
        protocol = _TcpProtocol(sim, links)
        protocols.append(protocol)
        return protocol

    server = await asyncio.get_running_loop().create_server(factory, host, port, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]

    async def close() -> None:
        server.close()
        for protocol in protocols:
            if protocol._transport is not None:
                protocol._transport.close()
        for link in list(links):
            await link.close()
        await server.wait_closed()
        await asyncio.sleep(0)

    return SimulatorServer(f"socket://{host}:{bound}", close, port=bound)


async def serve_pty(sim: SimulatedBalancer) -> SimulatorServer:
    """Serve the simulator on a pseudo-terminal; open its slave path like a serial port."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    loop = asyncio.get_running_loop()

    def write(data: bytes) -> None:
        with contextlib.suppress(OSError):  # nobody reads: bytes are lost, as on a real line
            os.write(master, data)

    link = _Link(sim, write)

    def readable() -> None:
        try:
            data = os.read(master, 4096)
        except BlockingIOError, OSError:
            return
        if data:
            link.feed(data)

    loop.add_reader(master, readable)

    async def close() -> None:
        loop.remove_reader(master)
        await link.close()
        os.close(master)
        os.close(slave)

    return SimulatorServer(path, close, path=path)
