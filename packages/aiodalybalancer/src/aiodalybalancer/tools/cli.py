"""Command-line tool: read a module, write one setting, or run the simulator.

    daly-balancer read --port /dev/ttyUSB0            # or socket://host:port, rfc2217://…
    daly-balancer read --ble AA:BB:CC:DD:EE:FF
    daly-balancer write --port socket://127.0.0.1:8899 balance_start_voltage 3.35
    daly-balancer simulate --tcp 8899 --pty
    daly-balancer simulate --tcp 8899 --pack-days 14 --speed 60   # a pack with a weak cell, 14 days in
    daly-balancer decode --data "d2 03 0a 00 01 01 00 00 10 00 01 00 0a c2 bc" --request d20300cc00055655

Output of ``read`` is one JSON object; ``decode`` prints one per frame found. The module's
password is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
import contextlib
from dataclasses import asdict
import json
import logging
import math
import re
import signal
import sys
from typing import Any, Final

from aiodalybalancer.client import DalyClient
from aiodalybalancer.errors import DalyError, FrameError
from aiodalybalancer.frames import (
    Direction,
    ExceptionResponse,
    Frame,
    Function,
    ReadRequest,
    ReadResponse,
    WriteMultiple,
    WriteMultipleAck,
    WriteSingle,
    parse,
)
from aiodalybalancer.models import Status
from aiodalybalancer.registers import BY_KEY, LIVE, MAX_CELLS, MIN_CELLS, REGISTERS, BatteryType, Block, Kind
from aiodalybalancer.stream import D2Framing, FrameStream
from aiodalybalancer.transport import BAUDRATE, SerialTransport, Transport

from .pack import weak_cell_simulator
from .simulator import SimulatedBalancer, SimulatorConfig, serve_pty, serve_tcp

#: Register keys → the names the captured vectors (the library's ``tests/vectors``) use in their ``expect``
#: objects, so that ``decode`` output can be compared with them key by key.
CAPTURE_NAMES: Final = {
    "cell_voltages": "cell_voltages_v",
    "temperatures": "temperatures_c",
    "pack_voltage": "pack_voltage_v",
    "max_cell_voltage": "max_cell_voltage_v",
    "min_cell_voltage": "min_cell_voltage_v",
    "average_cell_voltage": "average_cell_voltage_v",
    "cell_delta": "cell_delta_v",
    "cell_count": "cell_count",
    "temperature_sensor_count": "temperature_sensor_count",
    "balancing": "balancing_state",
    "faults": "fault_registers",
    "rated_capacity": "rated_capacity_ah",
    "string_count": "cell_count_setting",
    "battery_type": "battery_type",
    "sleep_time": "sleep_time_s",
    "cell_overvoltage_warning": "cell_overvoltage_warn_v",
    "cell_overvoltage_alarm": "cell_overvoltage_alarm_v",
    "cell_undervoltage_warning": "cell_undervoltage_warn_v",
    "cell_undervoltage_alarm": "cell_undervoltage_alarm_v",
    "balance_start_voltage": "balance_start_voltage_v",
    "balance_start_delta": "balance_start_delta_v",
    "software_version": "software_version",
    "hardware_version": "hardware_version",
    "serial_number": "serial_or_bar_code",
    "balancer_enabled": "balancer_enabled",
    "register_00ce": "register_00ce",
    "register_00d0": "register_00d0",
    "password": "password",  # always shown as REDACTED
}
#: Raw words of these registers are never printed.
_SECRET_WORDS: Final = frozenset(a for reg in REGISTERS if reg.secret for a in range(reg.address, reg.end))
REDACTED: Final = "**REDACTED**"
#: A Bluetooth address: six octets (Linux, Windows) or the UUID macOS gives a device instead.
_BLE_ADDRESS: Final = re.compile(
    r"[0-9A-F]{2}(?::[0-9A-F]{2}){5}|[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", re.IGNORECASE
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daly-balancer", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def link(p: argparse.ArgumentParser) -> None:
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("--port", help="serial device path or URL (socket://, rfc2217://)")
        group.add_argument("--ble", type=_ble_address, metavar="ADDRESS", help="Bluetooth address of the DALY dongle")
        p.add_argument("--timeout", type=_seconds, default=2.0, help="seconds to wait for each answer")

    link(sub.add_parser("read", help="read everything once and print JSON"))
    write = sub.add_parser("write", help="write one setting (validated, verified)")
    link(write)
    writable = sorted(reg.key for reg in BY_KEY.values() if reg.writable)
    write.add_argument("name", choices=writable)
    write.add_argument("value")

    decode = sub.add_parser("decode", help="find and decode the frames in captured bytes")
    decode.add_argument("--data", required=True, metavar="HEX", help="captured bytes (spaces and colons allowed)")
    decode.add_argument(
        "--request",
        action="append",
        default=[],
        metavar="HEX",
        help="the request(s) the data answers, in order: adds decoded values (repeatable)",
    )
    decode.add_argument(
        "--direction",
        choices=[d.value for d in Direction],
        default=Direction.RESPONSE.value,
        help="who sent the data (default: the module)",
    )

    sim = sub.add_parser("simulate", help="run the device simulator")
    sim.add_argument("--tcp", type=_tcp_port, metavar="PORT", help="serve on socket://127.0.0.1:PORT (0 = any)")
    sim.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal")
    sim.add_argument("--cells", type=_cells, default=16, help=f"{MIN_CELLS}..{MAX_CELLS} (default: 16)")
    sim.add_argument("--battery-type", choices=[b.value for b in BatteryType], default=BatteryType.LIFEPO4.value)
    sim.add_argument("--model", choices=["uart_rs485", "dual_uart"], default="uart_rs485")
    sim.add_argument("--a5", action="store_true", help="also answer legacy A5 frames")
    sim.add_argument("--pace", action="store_true", help="pace bytes at 9600 baud like the real UART")
    sim.add_argument(
        "--pack-days",
        type=_days,
        metavar="DAYS",
        help="cells from a pack with a weak cell (cell 5; of fewer cells, the last) that has lived DAYS days of sun and load",
    )
    sim.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="FACTOR",
        help="run the cells' physics FACTOR times faster than real time (60: an hour a minute)",
    )
    return parser


def _in_range[N: (int, float)](text: str, kind: type[N], low: N, high: N, what: str) -> N:
    """``text`` as a ``kind`` within ``low..high``; an argparse error naming ``what`` otherwise."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:  # NaN is in no range
        raise argparse.ArgumentTypeError(f"{what} must be {low:.12g}..{high:.12g}, got {text!r}")
    return value


def _tcp_port(text: str) -> int:
    return _in_range(text, int, 0, 65535, "port")


def _cells(text: str) -> int:
    return _in_range(text, int, MIN_CELLS, MAX_CELLS, "cells")


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):  # 0 or less would time out before any answer
        raise argparse.ArgumentTypeError(f"seconds must be a positive number, got {text!r}")
    return seconds


def _ble_address(text: str) -> str:
    if not _BLE_ADDRESS.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected a Bluetooth address like AA:BB:CC:DD:EE:FF (or a macOS device UUID), got {text!r}"
        )
    return text


def _days(text: str) -> float:
    return _in_range(text, float, 0.0, 365.0, "days")


def _speed(text: str) -> float:
    return _in_range(text, float, 1.0, 1e6, "speed")


async def _transport(args: argparse.Namespace) -> Transport:
    if args.port:
        return SerialTransport(args.port)
    from bleak import BleakScanner  # noqa: PLC0415 - only needed for BLE

    from aiodalybalancer.transport_ble import BleTransport  # noqa: PLC0415

    device = await BleakScanner.find_device_by_address(args.ble, timeout=10)
    if device is None:
        raise DalyError(f"{args.ble} not found (is the phone app connected to it?)")
    return BleTransport(device)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


async def _read(args: argparse.Namespace) -> dict[str, Any]:
    async with DalyClient(await _transport(args), timeout=args.timeout) as client:
        probe = await client.probe()
    identity = asdict(probe.identity)
    identity.pop("password", None)  # a secret: never printed
    status = asdict(probe.status)
    status["max_cell"] = probe.status.max_cell
    status["min_cell"] = probe.status.min_cell
    result: dict[str, Any] = _jsonable(
        {
            "protocol": probe.family.value,
            "identity": identity,
            "status": status,
            "settings": asdict(probe.settings),
        }
    )
    return result


def _parse_value(name: str, text: str) -> float | int | bool | str:
    reg = BY_KEY[name]
    if reg.kind is Kind.FLAG:
        lowered = text.lower()
        if lowered in {"1", "on", "true", "yes"}:
            return True
        if lowered in {"0", "off", "false", "no"}:
            return False
        raise DalyError(f"{name}: expected on/off, got {text!r}")
    if reg.kind is Kind.ENUM:
        return text
    try:
        number = float(text)
    except ValueError:
        raise DalyError(f"{name}: expected a number, got {text!r}") from None
    if reg.scale != 1:
        return number
    if not number.is_integer():
        raise DalyError(f"{name}: expected a whole number, got {text!r}")
    return int(number)


async def _write(args: argparse.Namespace) -> dict[str, Any]:
    value = _parse_value(args.name, args.value)
    BY_KEY[args.name].encode(value)  # out of range: refused (with the range) before connecting
    async with DalyClient(await _transport(args), timeout=args.timeout) as client:
        result = await client.write_setting(BY_KEY[args.name], value)
    return {"name": args.name, "value": _jsonable(result)}


def _hex(text: str) -> bytes:
    cleaned = "".join(text.replace(":", " ").replace("0x", " ").split())
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise DalyError(f"not hexadecimal bytes: {text!r}") from None


def _request(text: str) -> Frame:
    try:
        return parse(_hex(text), Direction.REQUEST)
    except FrameError as err:
        raise DalyError(f"--request {text!r} is not a valid D2 request: {err}") from None


def _capture_values(block: Block, words: tuple[int, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode ``words`` read from ``block``: values named like the captured vectors, and the rest."""
    decoded = block.decode(words)
    if (block.start, block.count) == (LIVE.start, LIVE.count):
        # Only the cells and temperature sensors the module reports (slots 7/8 are not sensors).
        status = Status.from_d2(decoded, None, None)
        decoded |= {
            "cell_voltages": status.cell_voltages,
            "temperatures": tuple(int(t) if t is not None and t.is_integer() else t for t in status.temperatures),
            "cell_count": status.cell_count,
            "temperature_sensor_count": status.temperature_sensor_count,
            "balancing": words[BY_KEY["balancing"].address - block.start],  # a state word, not a flag
        }
    named: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for key, value in decoded.items():
        shown = REDACTED if BY_KEY[key].secret else _jsonable(value)
        if key in CAPTURE_NAMES:
            named[CAPTURE_NAMES[key]] = shown
        else:
            other[key] = shown
    return named, other


def _describe(frame: Frame, pending: list[Frame]) -> dict[str, Any]:
    """One frame as JSON, matched to (and consuming) the request it answers, if one was given."""
    out: dict[str, Any]
    block: Block | None = None
    match frame:
        case ReadResponse(values=words):
            out = {"function": int(Function.READ), "byte_count": 2 * len(words), "registers": list(words)}
            request = next((r for r in pending if isinstance(r, ReadRequest) and r.count == len(words)), None)
            if request is not None:
                pending.remove(request)
                out["start"] = request.start
                block = Block("read", request.start, request.count)
        case WriteSingle(register=address, value=value):
            words = (value,)
            out = {"function": int(Function.WRITE_SINGLE), "byte_count": 2, "start": address, "registers": [value]}
            if frame in pending:
                pending.remove(frame)
                block = Block("write", address, 1)
        case WriteMultiple(start=address, values=words):
            out = {
                "function": int(Function.WRITE_MULTIPLE),
                "byte_count": 2 * len(words),
                "start": address,
                "registers": list(words),
            }
        case WriteMultipleAck(start=address, count=count):
            out = {
                "function": int(Function.WRITE_MULTIPLE),
                "byte_count": 0,
                "start": address,
                "count": count,
                "registers": [],
            }
        case ExceptionResponse(function=function, code=code):
            out = {"function": function | 0x80, "byte_count": 0, "exception_code": code, "registers": []}
        case ReadRequest(start=address, count=count):
            out = {"function": int(Function.READ), "byte_count": 0, "start": address, "count": count, "registers": []}
    start = out.get("start")
    if isinstance(start, int) and _SECRET_WORDS.intersection(range(start, start + len(out["registers"]))):
        out["registers"] = REDACTED
    if block is not None:
        out["values"], other = _capture_values(block, words)
        if other:
            out["other"] = other
    return out


def _decode(args: argparse.Namespace) -> list[dict[str, Any]]:
    pending = [_request(text) for text in args.request]
    stream: FrameStream[Frame] = FrameStream(D2Framing(Direction(args.direction)))
    return [_describe(frame, pending) for frame in stream.feed(_hex(args.data))]


async def _simulate(args: argparse.Namespace) -> None:
    if args.tcp is None and not args.pty:
        raise DalyError("choose --tcp PORT and/or --pty")
    config = SimulatorConfig(
        cells=args.cells,
        battery_type=BatteryType(args.battery_type),
        model=args.model,
        protocols=frozenset({"d2", "a5"} if args.a5 else {"d2"}),
        pace_baud=BAUDRATE if args.pace else None,
        speed=args.speed,
    )
    sim = SimulatedBalancer(config) if args.pack_days is None else weak_cell_simulator(args.pack_days, config)
    servers = []
    if args.tcp is not None:
        servers.append(await serve_tcp(sim, port=args.tcp))
    if args.pty:
        servers.append(await serve_pty(sim))
    for server in servers:
        print(server.url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for server in servers:
            await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        if args.command == "simulate":
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_simulate(args))
            return 0
        if args.command == "decode":
            for found in _decode(args):
                print(json.dumps(found, ensure_ascii=False))
            return 0
        result = asyncio.run(_read(args) if args.command == "read" else _write(args))
    except DalyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
