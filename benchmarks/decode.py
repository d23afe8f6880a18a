"""Decode benchmark: validating and decoding one live-block reply, ours against aiobmsble's.

Both sides get the same bytes in the same process and do the same job: check the frame (header,
length, CRC-16/MODBUS) and turn it into values (every field of the live block and the cells).

* Ours: ``FrameStream.feed`` (the client's re-assembler: length, CRC, ``parse``), then
  ``LIVE.decode`` and ``Status.from_d2``, exactly the client's path for a live block.
* aiobmsble 0.31.0 (``aiobmsble.bms.daly_bms.BMS``): its notification handler (header, length
  and CRC check, then it keeps the message), then its ``_async_update`` with the BLE exchange
  taken out (``_await_msg`` returns at once and the MOS-temperature request is skipped), so what
  runs is its real decode: ``_decode_data``, ``_temp_values`` and ``_cell_voltages``. Its
  derived values (``_add_missing_values``, done by ``async_update``) are left out, as ours has none.
"""

from __future__ import annotations

from collections.abc import Callable
import time
import timeit
from typing import Any, Final

from aiobmsble.basebms import crc_modbus  # type: ignore[import-untyped]
from aiobmsble.bms.daly_bms import BMS  # type: ignore[import-untyped]
from bleak.backends.device import BLEDevice

from aiodalybalancer.frames import Direction, ReadResponse, crc_ok
from aiodalybalancer.models import Status
from aiodalybalancer.registers import LIVE
from aiodalybalancer.stream import D2Framing, FrameStream
from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig

from .common import CELL_COUNTS, live_frame, median

#: Timing repeats per decoder, and the length of one repeat in seconds.
REPEATS: Final = 31
REPEAT_S: Final = 0.05
#: Repeats' worth of calls each decoder makes before the timing starts.
WARMUP_REPEATS: Final = 4
#: A BLE device as BlueZ would describe it (aiobmsble builds a BleakClient, which needs a path).
_DEVICE: Final = BLEDevice("40:17:10:01:5C:9B", "DL-401710015C9B", {"path": "/org/bluez/hci0/dev_40_17_10_01_5C_9B"})


def ours() -> Callable[[bytes], Status]:
    """Our decoder: one re-assembler reused across calls, as the client keeps one."""
    stream: FrameStream[object] = FrameStream(D2Framing(Direction.RESPONSE))

    def decode(frame: bytes) -> Status:
        (response,) = stream.feed(frame)
        assert isinstance(response, ReadResponse)
        return Status.from_d2(LIVE.decode(response.values), None, None)

    return decode


def aiobmsble(*, derived: bool = False) -> Callable[[bytes], dict[str, Any]]:
    """The DALY decoder of aiobmsble with its BLE exchange taken out.

    ``derived=True`` adds what its public ``async_update`` adds after decoding: the values it
    derives from the decoded ones (``_add_missing_values``: power, capacity, problem flag...).
    """
    bms = BMS(_DEVICE)

    async def message_already_there(*_args: object, **_kwargs: object) -> None:
        """``_await_msg`` without BLE: the notification handler has stored the message."""

    bms._await_msg = message_already_there
    bms._mos_avail = False  # no MOS-temperature request (it would be a second frame)

    def decode(frame: bytes) -> dict[str, Any]:
        bms._msg = b""
        bms._notification_handler(None, bytearray(frame))
        if not bms._msg:
            raise ValueError("aiobmsble refused the frame")
        update = bms._async_update()
        try:
            update.send(None)
        except StopIteration as done:
            result: dict[str, Any] = done.value
            if derived:
                bms._add_missing_values(result, bms._raw_values())
            return result
        raise RuntimeError("aiobmsble's update waited for something")

    return decode


def simulated_frame(cells: int) -> bytes:
    """A live-block reply of a simulated module with ``cells`` cells."""
    sim = SimulatedBalancer(SimulatorConfig(cells=cells, seed=cells), clock=lambda: 0.0)
    return ReadResponse(tuple(sim.words[LIVE.start : LIVE.end])).encode()


def _number(function: Callable[[], object]) -> int:
    """Calls per repeat so that one repeat lasts about ``REPEAT_S``."""
    start = time.perf_counter()
    for _ in range(200):
        function()
    each = (time.perf_counter() - start) / 200
    return max(200, int(REPEAT_S / each))


def paired_us(first: Callable[[bytes], object], second: Callable[[bytes], object], frame: bytes) -> tuple[float, float]:
    """Median microseconds per call of two decoders, their repeats interleaved.

    Interleaving gives both the same share of whatever else the machine is doing, so the ratio
    stays fair on a busy machine (each repeat is a ``timeit`` run with the garbage collector off).
    """
    timers = [timeit.Timer(lambda: first(frame)), timeit.Timer(lambda: second(frame))]
    numbers = [_number(lambda: first(frame)), _number(lambda: second(frame))]
    for index, timer in enumerate(timers):  # warm up: caches, and a CPU clock that has ramped up
        timer.timeit(numbers[index] * WARMUP_REPEATS)
    runs: list[list[float]] = [[], []]
    for _ in range(REPEATS):
        for index, timer in enumerate(timers):
            runs[index].append(timer.timeit(numbers[index]) / numbers[index] * 1e6)
    return median(runs[0]), median(runs[1])


def check_agreement(frame: bytes) -> None:
    """Both decoders must read the same cells and pack voltage, or the comparison is void."""
    status = ours()(frame)
    theirs = aiobmsble()(frame)
    if list(status.cell_voltages) != list(theirs["cell_voltages"]) or status.pack_voltage != theirs["voltage"]:
        raise AssertionError(f"decoders disagree: {status} vs {theirs}")


def run() -> dict[str, Any]:
    """The captured frame (the reported keys), then simulated frames of 4…24 cells."""
    frame = live_frame()
    check_agreement(frame)
    ours_us, theirs_us = paired_us(ours(), aiobmsble(), frame)
    _, theirs_derived_us = paired_us(ours(), aiobmsble(derived=True), frame)
    # The CRC alone: ours checks the whole frame, aiobmsble computes it over all but the last two
    # bytes and compares (its ``_check_integrity``); the compare is left out on both sides.
    crc_ours_us, crc_theirs_us = paired_us(crc_ok, lambda data: crc_modbus(data[:-2]), frame)
    growth: dict[int, dict[str, float]] = {}
    for cells in CELL_COUNTS:
        simulated = simulated_frame(cells)
        check_agreement(simulated)
        growth_ours, growth_theirs = paired_us(ours(), aiobmsble(), simulated)
        growth[cells] = {"ours": growth_ours, "aiobmsble": growth_theirs}
    return {
        "decode_us_ours": ours_us,
        "decode_us_aiobmsble": theirs_us,
        "decode_speedup": theirs_us / ours_us,
        "decode_us_aiobmsble_derived": theirs_derived_us,
        "crc_us_ours": crc_ours_us,
        "crc_us_aiobmsble": crc_theirs_us,
        "growth": growth,
    }
