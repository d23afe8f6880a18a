"""A simulated DALY Smart Active Balance Module, built on the same register table.

It is a second implementation of the device, not a mock: it parses the host's real frames with
the same re-assembler, answers from a register bank laid out by ``registers.REGISTERS`` (values
from ``factory.py``), runs a small physical model (drifting cells, balancing under the seed
manual's two conditions, sleeping after its sleep time) and is reached through real OS objects
(a pty, a TCP socket) or the stand-in BLE client in ``ble_standin.py``. Faults can be injected per reply.

Time: the model runs on ``clock()`` plus every second handed to :meth:`SimulatedBalancer.advance`,
so a test with a fake clock can move the physics and the sleep timer forward together.
``SimulatorConfig.speed`` runs the physics (cells, pack model, temperatures) that many times
faster than that time, while the sleep timer and the frame re-assembler keep real time: a host
polling at its usual pace sees a pack live through hours in minutes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
import contextlib
import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
import itertools
import math
import os
import random
import time
import tty
from typing import Final, Protocol

from aiodalybalancer import a5
from aiodalybalancer.frames import (
    Direction,
    Function,
    ReadRequest,
    ReadResponse,
    WriteMultiple,
    WriteMultipleAck,
    WriteSingle,
)
from aiodalybalancer.registers import (
    BLOCKS,
    BY_KEY,
    MAX_CELLS,
    MIN_CELLS,
    MIN_PACK_VOLTAGE,
    MIN_PACK_VOLTAGE_DUAL_UART,
    RAW_ABSENT,
    REGISTERS,
    SETTINGS,
    SLEEP_NEVER,
    BatteryType,
    Block,
    DecodedValue,
    Register,
)
from aiodalybalancer.stream import D2Framing, FrameStream
from aiodalybalancer.transport import wire_time

from . import a5_device
from .factory import factory_words

#: The module's register space: reads must lie inside 0x0000–0x00FF.
BANK_SIZE: Final = 0x100
#: Registers the host may write with 0x06 (everything the table marks writable).
_WRITABLE: Final = {reg.address: reg for reg in REGISTERS if reg.writable}
#: The app's clock registers (write-multiple at 0x00D4, three words YY MM | DD hh | mm ss, ref §4.6).
#: They are not in the register table (their meaning on the balancer is unknown).
RTC_START: Final = 0x00D4
RTC_COUNT: Final = 3

#: Raw settings block 0x0080–0x00A8 exactly as the captured balancer returned it (ref §4.4, S2).
#: Only the words the register table does not describe are taken from it (cells on boards 2/3,
#: pack limits, current and temperature limits, ...): the factory values (factory.py) win elsewhere.
_CAPTURED_SETTINGS: Final = bytes.fromhex(
    "01f40c8000010010000600060001000100010000ffff0dde0e4208fc0898000000001388138875307530753075300028"
    "007d002800000028007d0028000000000000000000000c8000140000000000000057"
)
#: Other blocks the app reads that came back all zero on the balancer (ref §4.3): GPS fields
#: 0x0057–0x0062 and 0x00D7. Everything else outside the table reads 0xFFFF, as 0x0063… does.
_CAPTURED_ZERO_RANGES: Final = ((0x0057, 0x0063), (0x00D7, 0x00D8))

#: Typical resting cell voltage (mV) per chemistry: inside the seed manual's wiring-check range.
_CELL_MV: Final = {BatteryType.LIFEPO4: 3320.0, BatteryType.LI_ION: 3850.0, BatteryType.LTO: 2450.0}
#: Balance turn-on voltage (mV) a fresh module holds per chemistry. LiFePO4: the manual's default
#: 3.3 V (the captured unit held 3.2 V). Li-ion and LTO: [INF] — the manual only says LTO users
#: must set it themselves; these are sensible values inside ``registers.CHEMISTRY``.
_BALANCE_START_MV: Final = {BatteryType.LIFEPO4: 3300, BatteryType.LI_ION: 3900, BatteryType.LTO: 2400}
#: Spread of the cells' own offsets around the chemistry's voltage, and how far a cell may wander
#: from its offset (mV): a healthy pack stays well under the 20 mV turn-on difference, like the
#: capture (3332–3338 mV).
_OFFSET_SPREAD_MV: Final = 4.0
_WANDER_MV: Final = 6.0
#: Random-walk noise (mV per √s) and pull back to the offset (per s) of each cell.
_NOISE_MV: Final = 0.4
_PULL_PER_S: Final = 0.05

#: The "Dual UART" model balances inside an operating window (seed manual: 3.0–3.7 V by default)
#: with a 50 mV default turn-on difference. Which registers hold the window is unknown, so the
#: window is fixed here; the difference uses 0x00A4 like the UART/RS485 model [INF].
DUAL_WINDOW_MV: Final = (3000, 3700)
DUAL_DELTA_MV: Final = 50
#: Below these pack voltages the module does not balance (the register table's, from the manual's
#: precaution 6). [?] The manual says "battery packs lower than 2V"; read literally that is the
#: pack (sum of cells), which is what is modelled.
MIN_PACK_MV: Final = {
    "uart_rs485": round(MIN_PACK_VOLTAGE * 1000),
    "dual_uart": round(MIN_PACK_VOLTAGE_DUAL_UART * 1000),
}
#: Transfer current while balancing (a 1 A module), and what it does to the cells: the highest
#: cell falls and the lowest rises by this many mV per second, so the difference shrinks by
#: about 6 mV per minute (the cells' capacity is not modelled).
BALANCE_CURRENT_MA: Final = 1000
BALANCE_MV_PER_S: Final = 0.05
_AMBIENT_C: Final = 28.0
#: Longest physics step; a long ``advance`` is cut into at most ``_MAX_STEPS`` steps.
_STEP_S: Final = 5.0
_MAX_STEPS: Final = 2000
#: Longest physics step (physics seconds) when the physics runs faster than the clock: the pack
#: model's own longest step, so the balancing rule is judged as often as the model steps.
_FAST_STEP_S: Final = 60.0

MODELS: Final = ("uart_rs485", "dual_uart")
PROTOCOLS: Final = frozenset({"d2", "a5"})

#: ASCII the HLK-B40 dongle puts on the notify characteristic (captured, ref §2.1).
_DONGLE_NOISE: Final = (b"AT+PRODUCTINFO=NoPID", b"9600", b"AT+PRODUCTINFO=NoPID\r\n")

#: Words the model rewrites on every step (the live registers).
_MODEL_KEYS: Final = (
    "cell_voltages",
    "temperatures",
    "pack_voltage",
    "max_cell_voltage",
    "min_cell_voltage",
    "max_temperature",
    "min_temperature",
    "cell_count",
    "temperature_sensor_count",
    "balancing",
    "average_cell_voltage",
    "cell_delta",
    "balancing_cells",
    "balance_current",
)
MODEL_ADDRESSES: Final = frozenset(a for key in _MODEL_KEYS for a in range(BY_KEY[key].address, BY_KEY[key].end))


class Fault(StrEnum):
    """What can go wrong with one reply."""

    DROP = "drop"  # no reply at all
    CORRUPT = "corrupt"  # one bit flipped in a data byte or the CRC/checksum
    SPLIT = "split"  # the reply arrives in 2–4 chunks with pauses between them
    MERGE = "merge"  # a valid but stale frame before or after the reply, in the same chunk
    DELAY = "delay"  # the reply comes ``FaultPlan.delay`` seconds late
    GARBAGE = "garbage"  # ASCII noise (the dongle's AT replies) before or after the reply


@dataclass
class FaultPlan:
    """Fault injection: with probability ``rate`` a reply gets one fault drawn from ``kinds``."""

    rate: float = 0.0
    kinds: tuple[Fault, ...] = tuple(Fault)
    delay: float = 2.0
    seed: int | None = None

    def __post_init__(self) -> None:
        """Refuse plans that cannot work."""
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be 0..1, got {self.rate}")
        self.kinds = tuple(Fault(kind) for kind in self.kinds)
        if self.rate > 0 and not self.kinds:
            raise ValueError("a fault rate needs at least one fault kind")
        if self.delay < 0:
            raise ValueError(f"fault delay must be >= 0, got {self.delay}")


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
    #: The physics runs this many times faster than the module's clock (1: real time).
    speed: float = 1.0

    def __post_init__(self) -> None:
        """Refuse a module that cannot exist."""
        if not MIN_CELLS <= self.cells <= MAX_CELLS:
            raise ValueError(f"cells must be {MIN_CELLS}..{MAX_CELLS}, got {self.cells}")
        if not 0 <= self.temperature_sensors <= 4:
            raise ValueError(f"temperature_sensors must be 0..4, got {self.temperature_sensors}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if not self.protocols or not self.protocols <= PROTOCOLS:
            raise ValueError(f"protocols must be a non-empty subset of {sorted(PROTOCOLS)}, got {self.protocols}")
        if self.pace_baud is not None and self.pace_baud <= 0:
            raise ValueError(f"pace_baud must be positive, got {self.pace_baud}")
        if not 1 <= self.speed <= 1e6:
            raise ValueError(f"speed must be 1..1000000, got {self.speed}")
        if self.response_delay < 0:
            raise ValueError(f"response_delay must be >= 0, got {self.response_delay}")
        object.__setattr__(self, "battery_type", BatteryType(self.battery_type))


class CellModel(Protocol):
    """A model of the cells behind the module (``pack.PackModel``): it drives the cell voltages."""

    def advance(self, seconds: float, *, balancing: bool | None = None) -> None:
        """Run the cells ``seconds`` on, the module balancing or not."""

    def cell_voltages(self) -> tuple[float, ...]:
        """Each cell's voltage (V)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes to send back: ``chunks`` (a pause between them), starting after ``delay`` seconds."""

    chunks: tuple[bytes, ...]
    delay: float = 0.0

    @property
    def data(self) -> bytes:
        """All bytes of the reply."""
        return b"".join(self.chunks)


@dataclass(frozen=True, slots=True)
class ServedRead:
    """One read the module answered: when (module time), from which address, and the words."""

    time: float
    start: int
    words: tuple[int, ...]


@dataclass
class SimulatorStats:
    """What the simulator saw and did."""

    #: Whole request frames taken while awake (D2 and A5).
    requests: int = 0
    #: Replies sent (a dropped reply is not counted; a faulty one is).
    replies: int = 0
    #: Accepted 0x06 writes (including those ``ignore_writes`` keeps from taking).
    writes: int = 0
    #: 0x06 writes refused (read-only register or invalid value: no reply).
    refused_writes: int = 0
    #: Accepted writes that did not take because of ``ignore_writes``.
    ignored_writes: int = 0
    #: Times traffic woke the module (each time one request was lost).
    wakeups: int = 0
    #: Faults injected, by ``Fault`` value.
    faults: Counter[str] = field(default_factory=Counter)


class SimulatedBalancer:
    """The module: a register bank, a physical model and a protocol front end."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        pack: CellModel | None = None,
    ) -> None:
        """Build a fresh module as it would leave the factory, set to ``config``.

        ``pack``: the cells come from this model (``pack.PackModel``), which the module's
        balancing drives, instead of wandering around fixed voltages.
        """
        config = config or SimulatorConfig()
        self.config: Final = config
        self.pack: Final = pack
        self._clock = clock
        self._advanced = 0.0
        self._rng = random.Random(config.seed)
        self._faults = dataclasses.replace(config.faults)  # a copy: the config may build others
        self._fault_rng = random.Random(config.faults.seed)
        self.stats = SimulatorStats()
        #: Register keys whose writes are echoed but do not take.
        self.ignore_writes: set[str] = set()
        #: True: the module answers nothing and sees no traffic (unplugged, out of reach).
        self.silent = False
        #: Set to a list to record every read answer as it is made (ground truth for the soak:
        #: what the module reported at that moment, whatever faults then do to the bytes).
        self.served: list[ServedRead] | None = None
        self._asleep = False
        self._d2: FrameStream[object] | None = None
        if "d2" in config.protocols:
            self._d2 = FrameStream(D2Framing(Direction.REQUEST), clock=self._now)
        self._a5: FrameStream[a5.A5Frame] | None = None
        if "a5" in config.protocols:
            self._a5 = FrameStream(a5.A5Framing(), clock=self._now)
        self._previous: tuple[bytes, ...] | None = None
        self._overrides: dict[int, int] = {}
        self.words: list[int] = self._fresh_bank()
        self._set("string_count", config.cells)
        self._set("register_00ce", config.cells)
        self._set("temperature_sensor_setting", config.temperature_sensors)
        self._set("battery_type", tuple(BatteryType).index(config.battery_type))
        self._set("balance_start_voltage", _BALANCE_START_MV[config.battery_type])
        if config.model == "dual_uart":
            self._set("balance_start_delta", DUAL_DELTA_MV)
        base = _CELL_MV[config.battery_type]
        self._centres = [base + self._rng.uniform(-_OFFSET_SPREAD_MV, _OFFSET_SPREAD_MV) for _ in range(config.cells)]
        self._cells = list(self._centres) if pack is None else self._pack_cells(pack)
        self._pinned: dict[int, float] = {}
        self._temps = [_AMBIENT_C + self._rng.uniform(-1, 1) for _ in range(config.temperature_sensors)]
        self._balancing = False
        now = self._now()
        self._last_step = now
        self._last_traffic = now
        self._refresh()

    @staticmethod
    def _fresh_bank() -> list[int]:
        """The bank before the config is applied: factory values, captured values elsewhere."""
        words = [RAW_ABSENT] * BANK_SIZE
        for block in BLOCKS:  # gaps inside the blocks the app reads came back 0 (ref §4.2)
            words[block.start : block.end] = [0] * block.count
        for start, end in _CAPTURED_ZERO_RANGES:
            words[start:end] = [0] * (end - start)
        captured = [int.from_bytes(_CAPTURED_SETTINGS[i : i + 2]) for i in range(0, len(_CAPTURED_SETTINGS), 2)]
        words[SETTINGS.start : SETTINGS.end] = captured
        for reg in REGISTERS:
            words[reg.address : reg.end] = factory_words(reg)
        return words

    # --- time -------------------------------------------------------------------------------

    def _now(self) -> float:
        """The module's time: the clock plus everything ``advance`` added."""
        return self._clock() + self._advanced

    # --- register bank ----------------------------------------------------------------------

    def _set(self, key: str, raw: int) -> None:
        self.words[BY_KEY[key].address] = raw

    def _raw(self, key: str) -> int:
        return self.words[BY_KEY[key].address]

    def read_word(self, address: int) -> int:
        """The raw word at ``address``."""
        return self.words[address]

    def write_word(self, address: int, value: int) -> None:
        """Set a raw word directly, bypassing validation (test control).

        A word the model computes (cells, pack, extremes, balancing flags, ...) keeps the written
        value until :meth:`release_word`, so a forced reading survives the model's next step.
        A setting (for example the balancer switch) takes effect at once.
        """
        if not 0 <= address < BANK_SIZE:
            raise ValueError(f"address 0x{address:04X} outside the register bank")
        value &= 0xFFFF
        self.words[address] = value
        if address in MODEL_ADDRESSES:
            self._overrides[address] = value
        self._refresh()

    def release_word(self, address: int | None = None) -> None:
        """Let the model compute a word forced by :meth:`write_word` again (``None``: all)."""
        if address is None:
            self._overrides.clear()
        else:
            self._overrides.pop(address, None)
        self._refresh()

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
        """Pin cell ``cell`` (1-based) at ``volts``: it no longer drifts nor balances."""
        if not 1 <= cell <= self.config.cells:
            raise ValueError(f"cell must be 1..{self.config.cells}, got {cell}")
        if not 0 <= volts <= 65.535:
            raise ValueError(f"cell voltage must be 0..65.535 V, got {volts}")
        self._pinned[cell - 1] = volts * 1000
        self._refresh()

    def release_cell(self, cell: int) -> None:
        """Let a pinned cell drift again from where the model had it."""
        self._pinned.pop(cell - 1, None)
        self._refresh()

    @property
    def balancing(self) -> bool:
        """True while the model moves charge (the switch is on and both conditions hold)."""
        return self._balancing

    @property
    def asleep(self) -> bool:
        """True while the module sleeps (no traffic for longer than its sleep time)."""
        self._check_sleep(self._now())
        return self._asleep

    def _check_sleep(self, now: float) -> None:
        sleep = self._raw("sleep_time")
        if sleep != SLEEP_NEVER and now - self._last_traffic > sleep:
            self._asleep = True

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force; setting a new one restarts its random draws from its seed."""
        return self._faults

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        self._faults = plan
        self._fault_rng = random.Random(plan.seed)

    # --- physics ----------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Run the module for ``seconds`` more (physics, and the sleep timer)."""
        if seconds < 0:
            raise ValueError("time only runs forward")
        self._advanced += seconds
        self._catch_up(self._now())

    def _catch_up(self, now: float) -> None:
        elapsed = now - self._last_step
        if elapsed <= 0:
            return
        self._last_step = now
        physics = elapsed * self.config.speed
        step = _STEP_S if self.config.speed == 1 else _FAST_STEP_S
        steps = min(_MAX_STEPS, math.ceil(physics / step))
        for _ in range(steps):
            self._step(physics / steps)

    def _step(self, dt: float) -> None:
        """``dt`` seconds of physics."""
        rng = self._rng
        pull = min(1.0, _PULL_PER_S * dt)
        if self.pack is not None:
            self.pack.advance(dt, balancing=self._balancing)
            self._cells = self._pack_cells(self.pack)
        else:
            noise = _NOISE_MV * math.sqrt(dt)
            for i, centre in enumerate(self._centres):
                value = self._cells[i] + rng.gauss(0, noise) + (centre - self._cells[i]) * pull
                self._cells[i] = min(max(value, centre - _WANDER_MV), centre + _WANDER_MV)
        self._temps = [t + (_AMBIENT_C - t) * pull + rng.gauss(0, 0.05 * math.sqrt(dt)) for t in self._temps]
        if self._balancing and self.pack is None:
            self._transfer(dt)
        self._refresh()

    def _pack_cells(self, pack: CellModel) -> list[float]:
        """The pack model's cells in mV (as many as the module is set to)."""
        cells = [volts * 1000 for volts in pack.cell_voltages()]
        if len(cells) != self.config.cells:
            raise ValueError(f"the pack has {len(cells)} cells, the module {self.config.cells}")
        return cells

    def _transfer(self, dt: float) -> None:
        """Move charge from the highest cell to the lowest; pinned cells keep their value."""
        cells = self._effective_cells()
        high = max(range(len(cells)), key=cells.__getitem__)
        low = min(range(len(cells)), key=cells.__getitem__)
        move = min(BALANCE_MV_PER_S * dt, (cells[high] - cells[low]) / 2)
        for index, sign in ((high, -1), (low, 1)):
            if index not in self._pinned:
                self._centres[index] += sign * move
                self._cells[index] += sign * move

    def _effective_cells(self) -> list[float]:
        return [self._pinned.get(i, v) for i, v in enumerate(self._cells)]

    def _refresh(self) -> None:
        self._evaluate_balancing()
        self._publish()

    def _evaluate_balancing(self) -> None:
        """The switch, the seed manual's two conditions, and the minimum pack voltage."""
        cells = [round(v) for v in self._effective_cells()]
        high, low = max(cells), min(cells)
        delta_ok = high - low >= self._raw("balance_start_delta")
        if self.config.model == "dual_uart":
            lo, hi = DUAL_WINDOW_MV
            voltage_ok = lo <= high <= hi  # [INF] the highest cell must be inside the window
        else:
            voltage_ok = high >= self._raw("balance_start_voltage")
        pack_ok = sum(cells) >= MIN_PACK_MV[self.config.model]
        self._balancing = self._raw("balancer_enabled") == 1 and voltage_ok and delta_ok and pack_ok

    def _publish(self) -> None:
        """Write the live and extended registers from the model's state, consistently."""
        words = self.words
        cells = [max(0, min(0xFFFF, round(v))) for v in self._effective_cells()]
        n = len(cells)
        start = BY_KEY["cell_voltages"].address
        words[start : start + BY_KEY["cell_voltages"].count] = cells + [0] * (BY_KEY["cell_voltages"].count - n)
        high, low = max(cells), min(cells)
        pack_dv = round(sum(cells) / 100)
        average = round(sum(cells) / n)
        temps = [max(0, round(t) + BY_KEY["temperatures"].offset) for t in self._temps]
        slots = BY_KEY["temperatures"].count
        # Slots 7/8 are not temperatures on the balancer: pack voltage (0.1 V) and average mV.
        words[BY_KEY["temperatures"].address : BY_KEY["temperatures"].end] = (
            temps + [0] * (slots - 2 - len(temps)) + [pack_dv, average]
        )
        self._set("pack_voltage", pack_dv)
        self._set("max_cell_voltage", high)
        self._set("min_cell_voltage", low)
        self._set("max_temperature", max(temps, default=0))
        self._set("min_temperature", min(temps, default=0))
        self._set("cell_count", n)
        self._set("temperature_sensor_count", len(temps))
        self._set("average_cell_voltage", average)
        self._set("cell_delta", high - low)
        self._set("balancing", int(self._balancing))
        bitmap = 1 << cells.index(high) | 1 << cells.index(low) if self._balancing else 0
        words[BY_KEY["balancing_cells"].address] = bitmap & 0xFFFF
        words[BY_KEY["balancing_cells"].address + 1] = bitmap >> 16
        # [INF] 0x0040 = 30000 + mA; the sign of the balancer's transfer current is unknown.
        current = BY_KEY["balance_current"]
        self._set("balance_current", current.offset + (BALANCE_CURRENT_MA if self._balancing else 0))
        for address, raw in self._overrides.items():
            words[address] = raw

    # --- protocol ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Reply]:
        """Take bytes from the host (any chunking); return the replies now due (after faults)."""
        if self.silent or not data:
            return []
        now = self._now()
        self._catch_up(now)
        self._check_sleep(now)
        self._last_traffic = now
        if self._asleep:
            # UART activity wakes the module, but what woke it is lost (ref §7 item 9).
            self._asleep = False
            self.stats.wakeups += 1
            for stream in (self._d2, self._a5):
                if stream is not None:
                    stream.reset()
            return []
        replies: list[Reply] = []
        for request in self._d2.feed(data) if self._d2 is not None else []:
            self.stats.requests += 1
            frame = self._answer(request)
            if frame is not None:
                replies.extend(self._deliver((frame,)))
        for a5_request in self._a5.feed(data) if self._a5 is not None else []:
            if a5_request.is_reply:  # a module's frame, not a host's request
                continue
            self.stats.requests += 1
            frames = a5_device.answer(a5_request, self._a5_state())
            if frames:
                replies.extend(self._deliver(tuple(frames)))
        return replies

    def _answer(self, request: object) -> bytes | None:
        if isinstance(request, ReadRequest):
            if request.start + request.count > BANK_SIZE:
                return None
            words = tuple(self.words[request.start : request.start + request.count])
            if self.served is not None:
                self.served.append(ServedRead(self._now(), request.start, words))
            return ReadResponse(words).encode()
        if isinstance(request, WriteSingle):
            return self._write(request)
        if isinstance(request, WriteMultiple):
            end = request.start + len(request.values)
            if request.start >= RTC_START and end <= RTC_START + RTC_COUNT:
                self.words[request.start : end] = request.values
                return WriteMultipleAck(request.start, len(request.values)).encode()
        return None

    def _write(self, request: WriteSingle) -> bytes | None:
        """Accept a valid value for a writable register; refuse anything else silently."""
        reg: Register | None = _WRITABLE.get(request.register)
        if reg is None or not self._valid(reg, request.value):
            self.stats.refused_writes += 1
            return None
        self.stats.writes += 1
        if reg.key in self.ignore_writes:
            self.stats.ignored_writes += 1
        else:
            self.words[reg.address] = request.value
            self._refresh()
        return request.encode()

    @staticmethod
    def _valid(reg: Register, raw: int) -> bool:
        """True when ``raw`` is what ``Register.encode`` makes of its own decoded value."""
        decoded = reg.decode_word(raw)
        if decoded is None:
            return False
        try:
            return reg.encode(decoded) == raw
        except ValueError:
            return False

    def _a5_state(self) -> a5_device.A5DeviceState:
        cells = self.cell_voltages()
        bits = BY_KEY["balancing_cells"]
        bitmap = self.words[bits.address] | self.words[bits.address + 1] << 16
        temps = BY_KEY["temperatures"]
        sensors = self.words[temps.address : temps.address + self.config.temperature_sensors]
        return a5_device.A5DeviceState(
            cell_voltages=cells,
            temperatures=tuple(float(raw - temps.offset) for raw in sensors),
            pack_voltage=self._raw("pack_voltage") * BY_KEY["pack_voltage"].scale,
            balancing_cells=tuple(bool(bitmap >> i & 1) for i in range(len(cells))),
            balance_start_voltage=self._raw("balance_start_voltage") * BY_KEY["balance_start_voltage"].scale,
            balance_start_delta=self._raw("balance_start_delta") * BY_KEY["balance_start_delta"].scale,
            cycles=self._raw("cycles"),
        )

    def _deliver(self, frames: tuple[bytes, ...]) -> list[Reply]:
        """Turn one reply (one or more frames) into what goes on the wire, with at most one fault."""
        previous, self._previous = self._previous, frames
        raw = b"".join(frames)
        delay = self.config.response_delay
        plan = self._faults
        rng = self._fault_rng
        if plan.rate <= 0 or not plan.kinds or rng.random() >= plan.rate:
            self.stats.replies += 1
            return [Reply((raw,), delay)]
        fault = Fault(rng.choice(plan.kinds))  # kinds may have been set to plain strings at run time
        self.stats.faults[fault.value] += 1
        if fault is Fault.DROP:
            return []
        self.stats.replies += 1
        if fault is Fault.CORRUPT:
            return [Reply((self._corrupt(frames, rng),), delay)]
        if fault is Fault.SPLIT:
            cuts = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.randint(1, 3))))
            return [Reply(tuple(raw[a:b] for a, b in itertools.pairwise([0, *cuts, len(raw)])), delay)]
        if fault is Fault.MERGE:
            # A valid frame that belongs to an earlier exchange, in the same chunk as the answer
            # (as when the app pipelined requests and the dongle forwarded them together).
            stale = b"".join(previous or frames)
            return [Reply((stale + raw if rng.random() < 0.5 else raw + stale,), delay)]
        if fault is Fault.DELAY:
            return [Reply((raw,), delay + plan.delay)]
        noise = rng.choice(_DONGLE_NOISE)
        return [Reply((noise + raw if rng.random() < 0.5 else raw + noise,), delay)]

    @staticmethod
    def _corrupt(frames: tuple[bytes, ...], rng: random.Random) -> bytes:
        """Flip one bit in a data byte or the check of one frame.

        The header is left alone, so the frame keeps its length and only its CRC/checksum can
        tell the host that it is wrong.
        """
        index = rng.randrange(len(frames))
        data = bytearray(frames[index])
        # Header: A5 start, address, command, length; D2 address, function (and byte count).
        header = 4 if data[0] == a5.START else 3 if data[1] == Function.READ else 2
        position = rng.randrange(header, len(data))
        data[position] ^= 1 << rng.randrange(8)  # one flipped bit always breaks CRC-16 and the A5 sum
        return b"".join((*frames[:index], bytes(data), *frames[index + 1 :]))


# --- servers ----------------------------------------------------------------------------------


class _Link:
    """One connection's sender: replies in order, with delays, split pauses and baud pacing.

    With ``pace_baud`` the link behaves like a UART at that rate (10 bits per byte, 8N1): a
    request is taken to have arrived one wire time after its bytes were handed over, the reply
    starts no earlier than that (and no earlier than the end of the previous reply: one line),
    and each piece of the reply is written when its last byte would have crossed the wire, so
    the host sees the reply's last byte exactly ``len(reply) * 10 / baud`` after it started.
    """

    #: Bytes written per paced piece (a USB-serial adapter hands over a few bytes at a time).
    PIECE: Final = 8
    #: Pause between the chunks of a reply split by a fault.
    SPLIT_PAUSE: Final = 0.02

    def __init__(self, sim: SimulatedBalancer, write: Callable[[bytes], None]) -> None:
        self._sim = sim
        self._write = write
        self._queue: asyncio.Queue[tuple[Reply, float]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._line_free = loop.time()
        self._task = loop.create_task(self._send())

    def feed(self, data: bytes) -> None:
        baud = self._sim.config.pace_baud
        arrived = asyncio.get_running_loop().time() + (wire_time(len(data), baud) if baud else 0.0)
        for reply in self._sim.receive(data):
            self._queue.put_nowait((reply, arrived))

    @staticmethod
    async def _until(when: float) -> None:
        wait = when - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _send(self) -> None:
        baud = self._sim.config.pace_baud
        while True:
            reply, arrived = await self._queue.get()
            start = max(arrived + reply.delay, self._line_free) if baud else arrived + reply.delay
            for index, chunk in enumerate(reply.chunks):
                if index:
                    start += self.SPLIT_PAUSE
                if not baud:
                    await self._until(start)
                    self._write(chunk)
                    continue
                for offset in range(0, len(chunk), self.PIECE):
                    piece = chunk[offset : offset + self.PIECE]
                    await self._until(start + wire_time(offset + len(piece), baud))
                    self._write(piece)
                start += wire_time(len(chunk), baud)
            self._line_free = start

    def cancel(self) -> None:
        """Stop sending (replies still queued are lost, as on a pulled cable)."""
        self._task.cancel()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class SimulatorServer:
    """A running server; ``url`` is what a client opens (``socket://…`` or a pty path)."""

    def __init__(
        self,
        url: str,
        closer: Callable[[], object],
        port: int = 0,
        path: str | None = None,
        connections: Callable[[], int] | None = None,
    ) -> None:
        """Keep how to stop it."""
        self.url = url
        self.port = port
        self.path = path
        self._closer = closer
        self._connections = connections or (lambda: 0)
        self._closed = False

    @property
    def connections(self) -> int:
        """Host connections open right now (TCP; always 0 for a pty)."""
        return self._connections()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    async def close(self) -> None:
        """Stop serving and release every socket, descriptor and task (idempotent)."""
        if self._closed:
            return
        self._closed = True
        result = self._closer()
        if asyncio.iscoroutine(result):
            await result


class _TcpProtocol(asyncio.Protocol):
    """One TCP connection: bytes in go to the simulator, its replies go back paced."""

    def __init__(self, sim: SimulatedBalancer, live: set[_TcpProtocol]) -> None:
        self._sim = sim
        self._live = live
        self.link: _Link | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.link = _Link(self._sim, self._send)
        self._live.add(self)

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self.link is not None:
            self.link.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._live.discard(self)
        if self.link is not None:
            self.link.cancel()


async def serve_tcp(sim: SimulatedBalancer, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
    """Serve the simulator on TCP (like a serial-to-TCP bridge); open it as ``socket://HOST:PORT``."""
    live: set[_TcpProtocol] = set()
    server = await asyncio.get_running_loop().create_server(
        lambda: _TcpProtocol(sim, live), host, port, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]

    async def close() -> None:
        server.close()
        protocols = list(live)
        for protocol in protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        for protocol in protocols:
            if protocol.link is not None:
                await protocol.link.close()
        await server.wait_closed()
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks run

    return SimulatorServer(f"socket://{host}:{bound}", close, port=bound, connections=lambda: len(live))


async def serve_pty(sim: SimulatedBalancer) -> SimulatorServer:
    """Serve the simulator on a pseudo-terminal; open its slave path like a serial port.

    The server keeps its own slave descriptor open, so hosts may open and close the path as often
    as they like without the master seeing a hang-up; :meth:`SimulatorServer.close` releases both.
    """
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        os.set_blocking(master, False)
        path = os.ttyname(slave)
    except OSError:
        os.close(master)
        os.close(slave)
        raise
    loop = asyncio.get_running_loop()

    def write(data: bytes) -> None:
        with contextlib.suppress(OSError):  # nobody reads and the buffer is full: bytes are lost
            os.write(master, data)

    link = _Link(sim, write)

    def readable() -> None:
        try:
            data = os.read(master, 4096)
        except OSError:  # BlockingIOError (spurious wake-up) or EIO
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
