"""The device side of the legacy A5 protocol: the replies a balancer sends (for the simulator).

The layouts are those ``aiodalybalancer/a5.py`` decodes; this module only builds them backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
import struct

from aiodalybalancer.a5 import (
    CELLS_PER_FRAME,
    CURRENT_OFFSET,
    DATA_LENGTH,
    REPLY_ADDRESS,
    TEMP_OFFSET,
    TEMPS_PER_FRAME,
    A5Frame,
    Command,
)


@dataclass(frozen=True)
class A5DeviceState:
    """What a simulated balancer knows when it answers A5 requests."""

    cell_voltages: tuple[float, ...]
    temperatures: tuple[float, ...]
    pack_voltage: float
    balancing_cells: tuple[bool, ...]
    balance_start_voltage: float
    balance_start_delta: float
    cycles: int = 0


def _frame(command: Command, data: bytes) -> bytes:
    return A5Frame(REPLY_ADDRESS, command, data.ljust(DATA_LENGTH, b"\x00")).encode()


def answer(request: A5Frame, state: A5DeviceState) -> list[bytes]:
    """The reply frames a balancer sends for ``request`` ([] for what it does not answer)."""
    cells_mv = [round(v * 1000) for v in state.cell_voltages]
    command = request.command
    if command == Command.PACK:
        pack = round(state.pack_voltage * 10)
        return [_frame(Command.PACK, struct.pack(">HHHH", pack, pack, CURRENT_OFFSET, 0))]
    if command == Command.EXTREMES:
        high = max(range(len(cells_mv)), key=cells_mv.__getitem__)
        low = min(range(len(cells_mv)), key=cells_mv.__getitem__)
        return [_frame(Command.EXTREMES, struct.pack(">HBHB", cells_mv[high], high + 1, cells_mv[low], low + 1))]
    if command == Command.TEMPERATURE_EXTREMES and state.temperatures:
        temps = [round(t) + TEMP_OFFSET for t in state.temperatures]
        high = max(range(len(temps)), key=temps.__getitem__)
        low = min(range(len(temps)), key=temps.__getitem__)
        return [_frame(Command.TEMPERATURE_EXTREMES, bytes((temps[high], high + 1, temps[low], low + 1)))]
    if command == Command.COUNTS:
        data = bytes((len(cells_mv), len(state.temperatures), 0, 0, 0)) + struct.pack(">H", state.cycles)
        return [_frame(Command.COUNTS, data)]
    if command == Command.CELLS:
        frames = []
        for number, first in enumerate(range(0, len(cells_mv), CELLS_PER_FRAME), start=1):
            chunk = cells_mv[first : first + CELLS_PER_FRAME]
            chunk += [0] * (CELLS_PER_FRAME - len(chunk))
            frames.append(_frame(Command.CELLS, bytes((number,)) + struct.pack(">HHH", *chunk)))
        return frames
    if command == Command.TEMPERATURES and state.temperatures:
        temps = [round(t) + TEMP_OFFSET for t in state.temperatures]
        return [
            _frame(Command.TEMPERATURES, bytes((number,)) + bytes(temps[first : first + TEMPS_PER_FRAME]))
            for number, first in enumerate(range(0, len(temps), TEMPS_PER_FRAME), start=1)
        ]
    if command == Command.BALANCING:
        bits = bytearray(6)
        for index, on in enumerate(state.balancing_cells[:48]):
            if on:
                bits[index // 8] |= 1 << (index % 8)
        return [_frame(Command.BALANCING, bytes(bits))]
    if command == Command.FAILURES:
        return [_frame(Command.FAILURES, bytes(DATA_LENGTH))]
    if command == Command.BALANCE_THRESHOLDS:
        voltage = round(state.balance_start_voltage * 1000)
        delta = round(state.balance_start_delta * 1000)
        return [_frame(Command.BALANCE_THRESHOLDS, struct.pack(">HH", voltage, delta))]
    return []
