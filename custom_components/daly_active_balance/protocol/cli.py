"""Command-line tool: read a module, write one setting, or run the simulator.

    daly-balancer read --port /dev/ttyUSB0            # or socket://host:port, rfc2217://…
    daly-balancer read --ble AA:BB:CC:DD:EE:FF
    daly-balancer write --port socket://127.0.0.1:8899 balance_start_voltage 3.35
    daly-balancer simulate --tcp 8899 --pty

Output of ``read`` is one JSON object. The module's password is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
import contextlib
from dataclasses import asdict
import json
import logging
import signal
import sys
from typing import Any

from .client import DalyClient
from .errors import DalyError
from .registers import BY_KEY, BatteryType, Kind
from .simulator import SimulatedBalancer, SimulatorConfig, serve_pty, serve_tcp
from .transport import SerialTransport, Transport


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daly-balancer", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def link(p: argparse.ArgumentParser) -> None:
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("--port", help="serial device path or URL (socket://, rfc2217://)")
        group.add_argument("--ble", metavar="ADDRESS", help="Bluetooth address of the DALY dongle")
        p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each answer")

    link(sub.add_parser("read", help="read everything once and print JSON"))
    write = sub.add_parser("write", help="write one setting (validated, verified)")
    link(write)
    writable = sorted(reg.key for reg in BY_KEY.values() if reg.writable)
    write.add_argument("name", choices=writable)
    write.add_argument("value")

    sim = sub.add_parser("simulate", help="run the device simulator")
    sim.add_argument("--tcp", type=int, metavar="PORT", help="serve on socket://127.0.0.1:PORT (0 = any)")
    sim.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal")
    sim.add_argument("--cells", type=int, default=16)
    sim.add_argument("--battery-type", choices=[b.value for b in BatteryType], default=BatteryType.LIFEPO4.value)
    sim.add_argument("--model", choices=["uart_rs485", "dual_uart"], default="uart_rs485")
    sim.add_argument("--a5", action="store_true", help="also answer legacy A5 frames")
    sim.add_argument("--pace", action="store_true", help="pace bytes at 9600 baud like the real UART")
    return parser


async def _transport(args: argparse.Namespace) -> Transport:
    if args.port:
        return SerialTransport(args.port)
    from bleak import BleakScanner  # noqa: PLC0415 - only needed for BLE

    from .transport_ble import BleTransport  # noqa: PLC0415

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
        return int(text) if reg.scale == 1 else float(text)
    except ValueError:
        raise DalyError(f"{name}: expected a number, got {text!r}") from None


async def _write(args: argparse.Namespace) -> dict[str, Any]:
    value = _parse_value(args.name, args.value)
    async with DalyClient(await _transport(args), timeout=args.timeout) as client:
        result = await client.write_setting(args.name, value)
    return {"name": args.name, "value": _jsonable(result)}


async def _simulate(args: argparse.Namespace) -> None:
    if args.tcp is None and not args.pty:
        raise DalyError("choose --tcp PORT and/or --pty")
    config = SimulatorConfig(
        cells=args.cells,
        battery_type=BatteryType(args.battery_type),
        model=args.model,
        protocols=frozenset({"d2", "a5"} if args.a5 else {"d2"}),
        pace_baud=9600 if args.pace else None,
    )
    sim = SimulatedBalancer(config)
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
        result = asyncio.run(_read(args) if args.command == "read" else _write(args))
    except DalyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
