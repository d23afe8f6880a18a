"""What the benchmarks share.

Wire times derived from the register table, the captured frame, statistics, the targets, the
results file, and simulated modules served by a process of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import json
import os
from pathlib import Path
import select
import statistics
import subprocess
import sys
import time
from types import TracebackType
from typing import Any, Final, Self

from aiodalybalancer.frames import ReadRequest, ReadResponse
from aiodalybalancer.registers import BALANCER, EXTENDED, LIVE, SETTINGS, Block
from aiodalybalancer.transport import BAUDRATE, wire_time

REPO: Final = Path(__file__).resolve().parent.parent
#: What child processes import from: the repository and its library's source.
CHILD_PYTHONPATH: Final = os.pathsep.join((str(REPO / "packages" / "aiodalybalancer" / "src"), str(REPO)))
CAPTURE: Final = REPO / "packages" / "aiodalybalancer" / "tests" / "vectors" / "balancer_capture.json"
#: The live-block request whose captured reply the decode benchmark uses.
LIVE_REQUEST_HEX: Final = "d2030000003ed7b9"
#: Cell counts whose cost growth is reported.
CELL_COUNTS: Final = (4, 8, 16, 24)

#: Where the Home Assistant benchmark (a pytest run in a child process) writes its results.
RESULTS_ENV: Final = "DALY_BENCH_RESULTS"
#: Where profiles go when the benchmark is asked to profile (``--profile``).
PROFILE_ENV: Final = "DALY_BENCH_PROFILE_DIR"
#: Minutes the ten-module run lasts (real time).
MINUTES_ENV: Final = "DALY_BENCH_MINUTES"
DEFAULT_MINUTES: Final = 3.0

#: Modules in the ten-module run, and their cells (the largest module: the worst case).
MODULES: Final = 10
MODULE_CELLS: Final = 24
#: What the Home Assistant benchmark's child process serves on TCP, in order: one module paced at
#: 9600 baud per cell count, one 24-cell module that answers in one chunk (no pacing), then the
#: ten paced modules of the long run.
HA_SPECS: Final = (
    *(f"tcp:{cells}:{BAUDRATE}" for cells in CELL_COUNTS),
    f"tcp:{MODULE_CELLS}",
    *(f"tcp:{MODULE_CELLS}:{BAUDRATE}" for _ in range(MODULES)),
)
UNPACED_INDEX: Final = len(CELL_COUNTS)
MODULES_START: Final = UNPACED_INDEX + 1

#: Blocks one poll cycle reads, in order (``DalyClient._status`` once the family is known).
POLL_BLOCKS: Final[tuple[Block, ...]] = (LIVE, EXTENDED, BALANCER)
#: Blocks a poll cycle that re-reads the settings reads.
POLL_SETTINGS_BLOCKS: Final[tuple[Block, ...]] = (*POLL_BLOCKS, SETTINGS)


#: The targets of the performance issue: (key, comparison, value). Reported, never asserted.
TARGETS: Final[dict[str, tuple[str, float | bool]]] = {
    # A guard, no longer a target: records and descriptions are the standard dataclasses.
    "import_rss_kb": ("<=", 2560),
    "decode_speedup": (">=", 3.0),
    "serial_cycle_ratio": ("<=", 1.05),
    "ble_writes_per_poll": ("<=", 3.0),
    "ble_connects_per_poll_keep": ("==", 0.0),
    "ha_update_ms_24s": ("<=", 5.0),
    "modules_10_all_fresh": ("==", True),
}


def target_met(key: str, value: object) -> bool | None:
    """Whether ``value`` meets the target of ``key`` (``None``: no target or no value)."""
    if key not in TARGETS or value is None:
        return None
    op, goal = TARGETS[key]
    if op == "==":
        return value == goal
    assert isinstance(value, (int, float))
    return value >= goal if op == ">=" else value <= goal


def exchange_bytes(block: Block) -> int:
    """Bytes one read of ``block`` puts on the wire: request plus reply, from real frames."""
    return len(ReadRequest(block.start, block.count).encode()) + len(ReadResponse((0,) * block.count).encode())


def wire_ms(blocks: Iterable[Block], baud: int = BAUDRATE) -> float:
    """Milliseconds the requests and replies for ``blocks`` need on a UART at ``baud`` (8N1)."""
    return wire_time(sum(exchange_bytes(block) for block in blocks), baud) * 1000


def live_frame() -> bytes:
    """The captured reply to the live-block request (16 cells, firmware B002_111132_03)."""
    capture = json.loads(CAPTURE.read_text())
    for response in capture["responses"]:
        if response["request"] == LIVE_REQUEST_HEX:
            return bytes.fromhex(response["hex"])
    raise LookupError(f"no captured reply to {LIVE_REQUEST_HEX} in {CAPTURE}")


def record(values: dict[str, Any]) -> None:
    """Merge results into the file named by ``DALY_BENCH_RESULTS`` (printed when it is unset)."""
    target = os.environ.get(RESULTS_ENV)
    if not target:
        print(json.dumps(values, indent=1))
        return
    path = Path(target)
    merged: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    merged.update(values)
    path.write_text(json.dumps(merged, indent=1))


def median(values: Sequence[float]) -> float:
    """The median (raises on an empty sequence)."""
    return statistics.median(values)


def log(message: str) -> None:
    """Progress on stderr: stdout carries only the table and the JSON line."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class SimProcess:
    """Simulated modules served by ``benchmarks.simserve`` in a child process.

    A process of its own keeps the device's pacing and its CPU use apart from what is measured:
    the client's time and the Home Assistant process's CPU. ``specs`` are ``KIND:CELLS[:BAUD]``
    with KIND ``tcp`` or ``pty``.
    """

    def __init__(self, specs: Sequence[str], *, piece: int | None = None, start_timeout: float = 30.0) -> None:
        """Remember what to serve (``piece``: bytes per paced write); started by ``start`` or ``with``."""
        self.specs = tuple(specs)
        self.piece = piece
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self.servers: list[dict[str, Any]] = []

    @property
    def urls(self) -> list[str]:
        """What a client opens, one per spec, in order."""
        return [str(server["url"]) for server in self.servers]

    def start(self) -> Self:
        """Start the child and wait for its line listing the servers."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.simserve", *self.specs],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # The library's own source first: an editable install may point at another clone.
            env={
                **os.environ,
                "PYTHONPATH": CHILD_PYTHONPATH,
                **({"DALY_SIM_PIECE": str(self.piece)} if self.piece else {}),
            },
        )
        assert self._process.stdout is not None
        deadline = time.monotonic() + self._start_timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._process.stdout], [], [], max(0.0, remaining))
            if not ready:
                self.close()
                raise TimeoutError(f"simulator process did not start within {self._start_timeout:g} s")
            chunk = os.read(self._process.stdout.fileno(), 65536)
            if not chunk:
                self.close()
                raise RuntimeError("simulator process exited before listing its servers")
            line += chunk
        self.servers = json.loads(line)["servers"]
        return self

    def close(self) -> None:
        """Stop the child: closing its stdin tells it to shut down; killed if it does not."""
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        """Start on entering the ``with`` block."""
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Stop on leaving it."""
        self.close()
