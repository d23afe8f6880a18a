"""Serve simulated modules until standard input closes (started by ``common.SimProcess``).

Usage: ``python -m benchmarks.simserve KIND:CELLS[:BAUD] ...`` with KIND ``tcp`` (127.0.0.1,
free port) or ``pty``. Prints one JSON line ``{"servers": [{"url", "kind", "cells", "baud"}]}``
once every server listens, then serves until its standard input reaches end of file (the parent
closed it or died) or it gets SIGTERM.

``DALY_SIM_PIECE=N`` makes paced links hand over N bytes at a time instead of 8: how a serial
adapter delivers a 9600-baud reply to the host (CP210x/CH340 about one byte per USB frame, FTDI
up to 16 ms worth, about 15 bytes).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from aiodalybalancer.tools import simulator
from aiodalybalancer.tools.simulator import (
    SimulatedBalancer,
    SimulatorConfig,
    SimulatorServer,
    serve_pty,
    serve_tcp,
)

#: Bytes per paced write (see the module's docstring).
PIECE_ENV = "DALY_SIM_PIECE"


def parse_spec(spec: str) -> tuple[str, int, int | None]:
    """``tcp:24:9600`` → ``("tcp", 24, 9600)``; the baud part is optional (no pacing)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in ("tcp", "pty"):
        raise ValueError(f"bad simulator spec {spec!r}: expected KIND:CELLS[:BAUD], KIND tcp or pty")
    baud = int(parts[2]) if len(parts) == 3 and parts[2] else None
    return parts[0], int(parts[1]), baud


async def serve(specs: list[str]) -> None:
    """Start every server, announce them, and serve until told to stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    piece = os.environ.get(PIECE_ENV)
    if piece:
        if not hasattr(simulator._Link, "PIECE"):
            raise RuntimeError("the simulator's paced link no longer has a PIECE size to set")
        simulator._Link.PIECE = int(piece)  # type: ignore[misc]
    servers: list[tuple[SimulatorServer, dict[str, object]]] = []
    for index, spec in enumerate(specs):
        kind, cells, baud = parse_spec(spec)
        sim = SimulatedBalancer(SimulatorConfig(cells=cells, pace_baud=baud, seed=index + 1))
        server = await (serve_tcp(sim) if kind == "tcp" else serve_pty(sim))
        servers.append((server, {"url": server.url, "kind": kind, "cells": cells, "baud": baud}))

    def stdin_readable() -> None:
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except OSError:
            data = b""
        if not data:
            stop.set()

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    sys.stdout.write(json.dumps({"servers": [info for _, info in servers]}) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        for server, _ in servers:
            await server.close()


def main() -> None:
    """Entry point."""
    asyncio.run(serve(sys.argv[1:]))


if __name__ == "__main__":
    main()
