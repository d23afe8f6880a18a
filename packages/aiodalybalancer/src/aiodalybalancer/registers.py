"""The register table of the DALY Smart Active Balance Module (D2 protocol).

This is the one place where a register's address, size, scale, unit, range and meaning are
written. The decoder, the write encoder, the simulator's register bank and the Home Assistant
entities are all derived from it.

Every register carries the confidence of what we know about it, taken from the team's protocol
reference (``protocol.md``): ``CAPTURED`` (seen in a real capture of the balancer),
``DOCUMENTED`` (DALY's BMS register document), ``CODE`` (working open-source code, usually for a
DALY *BMS*), ``INFERRED`` (a hypothesis) and ``UNKNOWN`` (meaning not known at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
import math
import struct
from typing import Final

from .errors import ValueOutOfRangeError

#: The D2 protocol's fixed slave address (not tied to a board number).
D2_ADDRESS: Final = 0xD2
#: The largest register count one read may ask for (the reply's byte count is one byte; the
#: DALY app never asks the balancer for more than 62).
MAX_READ_COUNT: Final = 62
#: Raw value the firmware returns for absent or unsupported registers (the captured MOSFET
#: temperature, every unused register of the map): never a reading.
RAW_ABSENT: Final = 0xFFFF
#: Raw sleep time that disables sleeping.
SLEEP_NEVER: Final = 65535
#: The sleep time the manual gives as the factory setting (s).
SLEEP_DEFAULT: Final = 3600
#: The shortest sleep time a write may set (s). The request that wakes the module is lost
#: (reference §7 item 9), so a client reaches it only with the request after that: a retry a
#: timeout later (2.25 s with the client's defaults), or a write's read-back. A module that
#: sleeps again sooner answers nothing, ever, and no write can set it back. 10 s leaves room for
#: a slower link's longer timeout.
SLEEP_MIN: Final = 10


class Confidence(StrEnum):
    """How sure we are of a register's meaning (tags of the protocol reference)."""

    CAPTURED = "captured"
    DOCUMENTED = "documented"
    CODE = "code"
    INFERRED = "inferred"
    UNKNOWN = "unknown"


class Kind(Enum):
    """How the raw 16-bit words of a register are turned into a value."""

    NUMBER = "number"  # (raw - offset) * scale, one value per word
    FLAG = "flag"  # 0/1 → bool
    ENUM = "enum"  # raw index into ``options``
    BITS = "bits"  # raw bit field, kept as int
    ASCII = "ascii"  # NUL-padded ASCII text over ``count`` words
    DATE = "date"  # YY MM DD 00 in two words → "20YY-MM-DD"


class BatteryType(StrEnum):
    """Cell chemistry, in the order of the raw values of register 0x0089."""

    LIFEPO4 = "lifepo4"
    LI_ION = "li_ion"
    LTO = "lto"


@dataclass(frozen=True, slots=True)
class Chemistry:
    """Voltage facts per chemistry (volts).

    ``plausible_*`` bound a cell that is wired and sampled correctly. The seed manual's wiring
    check gives 3.0–4.15 V (Li-ion), 2.5–3.6 V (LiFePO4) and 1.8–2.8 V (LTO) for a pack at rest;
    a healthy pack under charge or deep discharge goes a little beyond, so the plausible range
    adds a margin. ``balance_*`` bound the balance turn-on voltage that makes sense.
    """

    plausible_min: float
    plausible_max: float
    balance_min: float
    balance_max: float


CHEMISTRY: Final[Mapping[BatteryType, Chemistry]] = {
    BatteryType.LIFEPO4: Chemistry(2.0, 3.8, 2.8, 3.65),
    BatteryType.LI_ION: Chemistry(2.5, 4.3, 3.0, 4.2),
    BatteryType.LTO: Chemistry(1.5, 2.9, 1.8, 2.8),
}

#: The module is forbidden below this pack voltage. The manual says it twice, and differently:
#: precaution 6 disables the module on "battery packs lower than 2V" (UART/RS485 model; 1.5 V
#: for the Dual UART model), while a note in its product catalogue says "less than 10V". The
#: catalogue's 10 V contradicts the same page's 3~24S: a 3S LiFePO4 pack at its nominal 9.6 V,
#: and every 3S and 4S LTO pack, sit below it. So the precaution's floor is used, and the pack
#: check takes the UART/RS485 model's (it cannot tell the two models apart). Unconfirmed on
#: hardware. The simulator and the pack check both read these.
MIN_PACK_VOLTAGE: Final = 2.0
MIN_PACK_VOLTAGE_DUAL_UART: Final = 1.5
#: Supported string counts (seed manual: 3~24S).
MIN_CELLS: Final = 3
MAX_CELLS: Final = 24
#: Temperature slots that can hold a sensor: the live block has 8, but slots 7/8 hold the pack
#: and average voltage on the balancer (capture).
TEMPERATURE_SLOTS: Final = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class Register:
    """One register (or an array of equal registers) of the D2 map."""

    key: str
    address: int
    description: str
    confidence: Confidence
    count: int = 1
    kind: Kind = Kind.NUMBER
    scale: float = 1.0
    offset: int = 0
    unit: str | None = None
    writable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    #: Raw values that mean "no value" (absent sensor, unsupported register): decoded to None.
    #: Every register takes the firmware's marker 0xFFFF as absent unless it says otherwise.
    absent: frozenset[int] = frozenset({RAW_ABSENT})
    #: Raw values with a meaning of their own, allowed in writes even outside the range.
    special: Mapping[int, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    #: Never log, print or publish (the module's settings password).
    secret: bool = False
    #: Number of decimals the scale gives (0.001 → 3), and 10**decimals: they follow from it.
    decimals: int = field(init=False, repr=False, compare=False)
    divisor: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Derive the decimals from the scale, which must be a power of ten."""
        decimals = round(-math.log10(self.scale))
        if decimals < 0 or self.scale != 1 / 10**decimals:
            raise ValueError(f"{self.key}: scale {self.scale} is not 1, 0.1, 0.01, …")
        # Frozen: the derived fields are set the way the generated __init__ sets the others.
        object.__setattr__(self, "decimals", decimals)
        object.__setattr__(self, "divisor", 10**decimals)

    @property
    def end(self) -> int:
        """Address after the last word of this register."""
        return self.address + self.count

    def decode(self, words: Sequence[int]) -> DecodedValue:
        """Decode the register's ``count`` raw words: one value, text, or a tuple for an array."""
        if self.count == 1:
            return self.decode_word(words[0])
        if self.kind is Kind.ASCII:
            return _ascii(words)
        if self.kind is Kind.DATE:
            return _date(words)
        return tuple(self.decode_words(words))

    def decode_word(self, raw: int) -> DecodedWord:
        """Decode one raw word (of a one-word register, or one element of an array) by its kind.

        Absent values are ``None`` and special values stay raw. A number is (raw − offset) ×
        scale: an int for a scale of 1, else a float. The scale is 10**-decimals, so dividing by
        10**decimals gives the float nearest the decimal value, the one
        ``round(x * scale, decimals)`` gives, without rounding (docs/performance.md).
        """
        if raw in self.absent:
            return None
        if raw in self.special:
            return raw
        kind = self.kind
        if kind is Kind.NUMBER:
            return (raw - self.offset) / self.divisor if self.decimals else raw - self.offset
        if kind is Kind.FLAG:
            return raw != 0
        if kind is Kind.ENUM:
            return self.options[raw] if raw < len(self.options) else None
        return raw  # Kind.BITS: the raw bit field

    def decode_words(self, words: Sequence[int]) -> list[DecodedWord]:
        """Decode raw words one by one, each as ``decode_word`` does.

        The arrays (cells, temperatures, fault words) take one pass when no word is absent or
        special, which is how a module reports its cells.
        """
        if not self.special and self.absent.isdisjoint(words):
            if self.kind is Kind.NUMBER:
                offset, divisor = self.offset, self.divisor
                return [(raw - offset) / divisor for raw in words] if self.decimals else [raw - offset for raw in words]
            if self.kind is Kind.BITS:
                return list(words)
        return [self.decode_word(raw) for raw in words]

    def encode(self, value: float | int | bool | str) -> int:
        """Encode a value for a write, refusing anything outside the register's range."""
        if not self.writable:
            raise ValueOutOfRangeError(self.key, value, "register is read-only")
        if self.kind is Kind.FLAG:
            if value not in (True, False, 0, 1):
                raise ValueOutOfRangeError(self.key, value, "expected on/off")
            return int(bool(value))
        if self.kind is Kind.ENUM:
            if value not in self.options:
                raise ValueOutOfRangeError(self.key, value, f"expected one of {', '.join(self.options)}")
            return self.options.index(str(value))
        if isinstance(value, (str, bool)):
            raise ValueOutOfRangeError(self.key, value, "expected a number")
        if not math.isfinite(value):  # NaN passes every range comparison; round(inf) overflows
            raise ValueOutOfRangeError(self.key, value, "expected a finite number")
        raw = round(value / self.scale) + self.offset
        if raw in self.special:
            return raw
        assert self.minimum is not None and self.maximum is not None
        # The range is checked on the value the module would get (after rounding to the
        # register's step), so half a step outside it is refused too.
        if not round(self.minimum / self.scale) <= raw - self.offset <= round(self.maximum / self.scale):
            raise ValueOutOfRangeError(
                self.key, value, f"allowed {self.minimum:g} to {self.maximum:g} {self.unit or ''}".rstrip()
            )
        return raw


_C = Confidence
#: Raw 0 also means "no sensor" where a temperature slot or sensor is not fitted (capture: the
#: unused slots 2–6 and the board temperature read 0, that is −40 °C).
_ABSENT_OR_ZERO = frozenset({0, RAW_ABSENT})


REGISTERS: Final[tuple[Register, ...]] = (
    # --- live block 0x0000–0x003D -------------------------------------------------------
    Register(
        key="cell_voltages",
        address=0x0000,
        count=32,
        scale=0.001,
        unit="V",
        description="Cell 1…32 voltage",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="temperatures",
        address=0x0020,
        count=8,
        offset=40,
        unit="°C",
        absent=_ABSENT_OR_ZERO,
        description="Temperature sensor 1…8; only the first `temperature_sensor_count` are "
        "real (slots 7/8 hold pack and average voltage on the balancer; unused slots read 0)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="pack_voltage",
        address=0x0028,
        scale=0.1,
        unit="V",
        description="Pack voltage",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="current",
        address=0x0029,
        scale=0.1,
        offset=30000,
        unit="A",
        description="Pack current, + = charge (the balancer has no shunt: always 0)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="soc",
        address=0x002A,
        scale=0.1,
        unit="%",
        description="State of charge (0 on the balancer)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="max_cell_voltage",
        address=0x002B,
        scale=0.001,
        unit="V",
        description="Highest cell voltage (sampled apart from the cell list)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="min_cell_voltage",
        address=0x002C,
        scale=0.001,
        unit="V",
        description="Lowest cell voltage (sampled apart from the cell list)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="max_temperature",
        address=0x002D,
        offset=40,
        unit="°C",
        description="Highest temperature",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="min_temperature",
        address=0x002E,
        offset=40,
        unit="°C",
        description="Lowest temperature",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="state",
        address=0x002F,
        kind=Kind.ENUM,
        options=("idle", "charge", "discharge"),
        description="Charge state (always idle on the balancer)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="remaining_capacity",
        address=0x0030,
        scale=0.1,
        unit="Ah",
        description="Remaining capacity (0 on the balancer)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="cell_count",
        address=0x0031,
        description="Number of cells the module measures",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="temperature_sensor_count",
        address=0x0032,
        description="Number of temperature sensors",
        confidence=_C.CAPTURED,
    ),
    Register(key="cycles", address=0x0033, description="Charge cycles (0 on the balancer)", confidence=_C.CAPTURED),
    Register(
        key="balancing",
        address=0x0034,
        kind=Kind.FLAG,
        description="Balancing active (DALY doc: 0 off, 1 on; only 0 was ever captured from a balancer)",
        confidence=_C.DOCUMENTED,
    ),
    Register(
        key="charge_mos",
        address=0x0035,
        kind=Kind.FLAG,
        description="Charge MOSFET (BMS only, meaningless here)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="discharge_mos",
        address=0x0036,
        kind=Kind.FLAG,
        description="Discharge MOSFET (BMS only, meaningless here)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="average_cell_voltage",
        address=0x0037,
        scale=0.001,
        unit="V",
        description="Average cell voltage",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="cell_delta",
        address=0x0038,
        scale=0.001,
        unit="V",
        description="Cell voltage difference max − min, 1 mV per step (not 0.1 mV)",
        confidence=_C.CAPTURED,
    ),
    Register(key="power", address=0x0039, unit="W", description="Power (DALY doc)", confidence=_C.DOCUMENTED),
    Register(
        key="faults",
        address=0x003A,
        count=4,
        kind=Kind.BITS,
        absent=frozenset(),  # a bit field: every value has a meaning
        description="Fault bit fields 1–4 (DALY doc; no capture with alarms exists)",
        confidence=_C.DOCUMENTED,
    ),
    # --- extended block 0x003E–0x0046 ---------------------------------------------------
    Register(
        key="balancing_cells",
        address=0x003E,
        count=2,
        kind=Kind.BITS,
        absent=frozenset(),  # a bit field: every value has a meaning
        description="Per-cell balancing bitmap, cells 1–16 and 17–32, bit 0 = cell 1 "
        "(from ESPHome code; the BMS doc calls 0x003E 'remaining mileage')",
        confidence=_C.INFERRED,
    ),
    Register(
        key="balance_current",
        address=0x0040,
        scale=0.001,
        offset=30000,
        unit="A",
        description="Balance current (from 100Balance BMS frames; plausible for the balancer, sign unknown)",
        confidence=_C.INFERRED,
    ),
    Register(
        key="mos_temperature",
        address=0x0042,
        offset=40,
        unit="°C",
        absent=_ABSENT_OR_ZERO,
        description="MOSFET temperature (0xFFFF on the balancer: absent)",
        confidence=_C.CODE,
    ),
    Register(
        key="board_temperature",
        address=0x0043,
        offset=40,
        unit="°C",
        absent=_ABSENT_OR_ZERO,
        description="Board temperature (0 = absent)",
        confidence=_C.CODE,
    ),
    # --- settings block 0x0080–0x00A8 ---------------------------------------------------
    Register(
        key="rated_capacity",
        address=0x0080,
        scale=0.1,
        unit="Ah",
        description="Rated capacity",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="cell_reference_voltage",
        address=0x0081,
        scale=0.001,
        unit="V",
        description="Cell reference voltage",
        confidence=_C.CAPTURED,
    ),
    Register(key="board_count", address=0x0082, description="Acquisition boards", confidence=_C.CAPTURED),
    Register(
        key="string_count",
        address=0x0083,
        writable=True,
        minimum=MIN_CELLS,
        maximum=MAX_CELLS,
        step=1,
        description="Cells on board 1 = the configured string count (the app's 'number "
        "of strings' is inferred to be this register, 0x00CE is the other "
        "candidate)",
        confidence=_C.INFERRED,
    ),
    Register(
        key="temperature_sensor_setting",
        address=0x0086,
        description="Temperature sensors on board 1",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="battery_type",
        address=0x0089,
        kind=Kind.ENUM,
        writable=True,
        options=tuple(BatteryType),
        description="Battery type 0 LiFePO4, 1 Li-ion, 2 LTO",
        confidence=_C.DOCUMENTED,
    ),
    Register(
        key="sleep_time",
        address=0x008A,
        unit="s",
        writable=True,
        # The manual names only the 3600 s default and 65535 = never; the protocol reference
        # gives a 1 s step and no minimum. Below SLEEP_MIN no client could reach the module.
        minimum=SLEEP_MIN,
        maximum=SLEEP_NEVER,
        step=1,
        absent=frozenset(),  # 0xFFFF = 65535 is "never", not absent
        special={SLEEP_NEVER: "never"},
        description="Sleep after this many seconds without traffic; 65535 = never (the manual's default is 3600 s)",
        confidence=_C.DOCUMENTED,
    ),
    Register(
        key="cell_overvoltage_warning",
        address=0x008B,
        scale=0.001,
        unit="V",
        description="Cell over-voltage warning",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="cell_overvoltage_alarm",
        address=0x008C,
        scale=0.001,
        unit="V",
        description="Cell over-voltage alarm",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="cell_undervoltage_warning",
        address=0x008D,
        scale=0.001,
        unit="V",
        description="Cell under-voltage warning",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="cell_undervoltage_alarm",
        address=0x008E,
        scale=0.001,
        unit="V",
        description="Cell under-voltage alarm",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="cell_delta_warning",
        address=0x009F,
        scale=0.001,
        unit="V",
        description="Cell difference warning",
        confidence=_C.DOCUMENTED,
    ),
    Register(
        key="cell_delta_alarm",
        address=0x00A0,
        scale=0.001,
        unit="V",
        description="Cell difference alarm",
        confidence=_C.DOCUMENTED,
    ),
    Register(
        key="balance_start_voltage",
        address=0x00A3,
        scale=0.001,
        unit="V",
        writable=True,
        minimum=1.8,
        maximum=4.2,
        step=0.001,
        description="Balance turn-on voltage: balancing needs a cell above it (range per chemistry in CHEMISTRY)",
        confidence=_C.DOCUMENTED,
    ),
    Register(
        key="balance_start_delta",
        address=0x00A4,
        scale=0.001,
        unit="V",
        writable=True,
        minimum=0.005,
        maximum=0.5,
        step=0.001,
        description="Balance turn-on difference: balancing needs max − min above it",
        confidence=_C.DOCUMENTED,
    ),
    # --- identification 0x00A9–0x00CB ---------------------------------------------------
    Register(
        key="software_version",
        address=0x00A9,
        count=8,
        kind=Kind.ASCII,
        description="Software version (16 bytes ASCII)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="hardware_version",
        address=0x00B1,
        count=8,
        kind=Kind.ASCII,
        description="Hardware version (16 bytes ASCII)",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="serial_number",
        address=0x00B9,
        count=16,
        kind=Kind.ASCII,
        description="Machine code / bar code (32 bytes ASCII, empty on the captured unit)",
        confidence=_C.DOCUMENTED,
    ),
    Register(
        key="password",
        address=0x00C9,
        count=3,
        kind=Kind.ASCII,
        secret=True,
        description="Settings password, checked only by the phone app (a secret)",
        confidence=_C.CAPTURED,
    ),
    # --- balancer block 0x00CC–0x00D0 ---------------------------------------------------
    Register(
        key="production_date",
        address=0x00CC,
        count=2,
        kind=Kind.DATE,
        description="Production date YY MM DD 00 (2000-01-01 = unset)",
        confidence=_C.DOCUMENTED,
    ),
    Register(
        key="register_00ce",
        address=0x00CE,
        description="Unknown; equals the cell count in the only capture",
        confidence=_C.UNKNOWN,
    ),
    Register(
        key="balancer_enabled",
        address=0x00CF,
        kind=Kind.FLAG,
        writable=True,
        description="Balancer switch 1 = on, 0 = off",
        confidence=_C.CAPTURED,
    ),
    Register(
        key="register_00d0",
        address=0x00D0,
        description="Unknown (10 in the capture; maybe the balance current in 0.1 A)",
        confidence=_C.UNKNOWN,
    ),
)

BY_KEY: Final[Mapping[str, Register]] = {reg.key: reg for reg in REGISTERS}


def register(key: str) -> Register:
    """The register named ``key``."""
    return BY_KEY[key]


# --- decoding ----------------------------------------------------------------------------

DecodedWord = float | int | bool | str | None
DecodedValue = DecodedWord | tuple[DecodedWord, ...]


def _ascii(words: Sequence[int]) -> str:
    return struct.pack(f">{len(words)}H", *words).split(b"\x00", 1)[0].decode("ascii", "replace").strip()


def _date(words: Sequence[int]) -> str | None:
    year, month, day = words[0] >> 8, words[0] & 0xFF, words[1] >> 8
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{2000 + year:04d}-{month:02d}-{day:02d}"


# --- blocks --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """A contiguous run of registers read with one request."""

    name: str
    start: int
    count: int
    #: The registers that lie entirely inside this block (they follow from start and count).
    registers: tuple[Register, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Collect the block's registers from the table."""
        end = self.start + self.count
        object.__setattr__(self, "registers", tuple(r for r in REGISTERS if self.start <= r.address and r.end <= end))

    @property
    def end(self) -> int:
        """Address after the block's last word."""
        return self.start + self.count

    def decode(self, words: Sequence[int]) -> dict[str, DecodedValue]:
        """Decode the block's raw words into ``{key: value}``."""
        if len(words) != self.count:
            raise ValueError(f"block {self.name} needs {self.count} words, got {len(words)}")
        start = self.start
        values: dict[str, DecodedValue] = {}
        for reg in self.registers:
            at = reg.address - start
            values[reg.key] = reg.decode_word(words[at]) if reg.count == 1 else reg.decode(words[at : at + reg.count])
        return values


LIVE: Final = Block("live", 0x0000, 62)
EXTENDED: Final = Block("extended", 0x003E, 9)
SETTINGS: Final = Block("settings", 0x0080, 41)
IDENTITY: Final = Block("identity", 0x00A9, 32)
PASSWORD: Final = Block("password", 0x00C9, 3)
BALANCER: Final = Block("balancer", 0x00CC, 5)
BLOCKS: Final = (LIVE, EXTENDED, SETTINGS, IDENTITY, PASSWORD, BALANCER)


def chemistry_of(battery_type: BatteryType | str | None) -> BatteryType:
    """The chemistry a battery type setting names; LiFePO4 when unknown (a raw value outside the table)."""
    try:
        return BatteryType(battery_type or BatteryType.LIFEPO4)
    except ValueError:
        return BatteryType.LIFEPO4


def balance_voltage_range(battery_type: BatteryType | str | None) -> tuple[float, float]:
    """The sensible balance turn-on voltage range for a chemistry (the register's if unknown)."""
    reg = BY_KEY["balance_start_voltage"]
    assert reg.minimum is not None and reg.maximum is not None
    if battery_type is None or battery_type not in CHEMISTRY:
        return reg.minimum, reg.maximum
    chem = CHEMISTRY[BatteryType(battery_type)]
    return chem.balance_min, chem.balance_max


#: Names of the fault bits in registers 0x003A–0x003D (``faults`` words 0–3), from DALY's BMS
#: document (reference §4.1). Bit 0–7 are the register's low-order byte ("byte 0") as ESPHome
#: reads it; no capture with an alarm exists, so the byte order is unverified. Many bits are
#: BMS-only and cannot occur on a balancer; they are named all the same so nothing is hidden.
FAULT_BITS: Final[tuple[tuple[str, ...], ...]] = (
    (
        "cell_overvoltage_1",
        "cell_overvoltage_2",
        "cell_undervoltage_1",
        "cell_undervoltage_2",
        "pack_overvoltage_1",
        "pack_overvoltage_2",
        "pack_undervoltage_1",
        "pack_undervoltage_2",
        "charge_overtemperature_1",
        "charge_overtemperature_2",
        "charge_undertemperature_1",
        "charge_undertemperature_2",
        "discharge_overtemperature_1",
        "discharge_overtemperature_2",
        "discharge_undertemperature_1",
        "discharge_undertemperature_2",
    ),
    (
        "charge_overcurrent_1",
        "charge_overcurrent_2",
        "discharge_overcurrent_1",
        "discharge_overcurrent_2",
        "soc_high_1",
        "soc_high_2",
        "soc_low_1",
        "soc_low_2",
        "cell_difference_1",
        "cell_difference_2",
        "temperature_difference_1",
        "temperature_difference_2",
        "",
        "",
        "",
        "",
    ),
    (
        "mos_charge_overtemperature",
        "mos_discharge_overtemperature",
        "mos_charge_sensor_fault",
        "mos_discharge_sensor_fault",
        "mos_charge_adhesion",
        "mos_discharge_adhesion",
        "mos_charge_circuit_fault",
        "mos_discharge_circuit_fault",
        "afe_chip_fault",
        "cell_sampling_offline",
        "temperature_sensor_fault",
        "eeprom_fault",
        "rtc_fault",
        "precharge_failed",
        "vehicle_communication_fault",
        "network_module_fault",
    ),
    (
        "current_module_fault",
        "pack_voltage_module_fault",
        "short_circuit_protection_fault",
        "low_voltage_charge_inhibit",
        "soft_switch_mos_off",
        "charging_cabinet_offline",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ),
)


#: The level-1 bits (``*_1``): warnings. Every other bit is a level-2 fault, a protection or a
#: hardware fault.
WARNING_BITS: Final = frozenset(name for word in FAULT_BITS for name in word if name.endswith("_1"))


def active_faults(words: Sequence[int]) -> list[str]:
    """Names of the fault bits set in the fault words (unnamed bits as ``fault_<word>_<bit>``)."""
    names: list[str] = []
    for index, word in enumerate(words):
        for bit in range(16):
            if word >> bit & 1:
                known = FAULT_BITS[index][bit] if index < len(FAULT_BITS) else ""
                names.append(known or f"fault_{index}_{bit}")
    return names
