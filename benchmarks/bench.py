"""The benchmark: import cost, decode, serial poll cycle, BLE counts, HA update cost, ten modules.

Run it with ``scripts/bench`` (or ``python -m benchmarks.bench`` inside the project's venv). It
prints a table, then one JSON object on its last line with exactly the keys of ``JSON_KEYS``.
Progress goes to stderr. ``--profile DIR`` also writes cProfile profiles of the decode, the
serial poll and the Home Assistant update to DIR (and prints their top entries to stderr).
``--skip-modules`` leaves out the ten-module run (its keys are then ``null``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
from pathlib import Path
import pstats
import subprocess
import sys
import tempfile
import time
from typing import Any, Final

from aiodalybalancer.client import DalyClient
from aiodalybalancer.transport import BAUDRATE, SerialTransport

from . import decode, imports, links
from .common import (
    CELL_COUNTS,
    DEFAULT_MINUTES,
    MINUTES_ENV,
    PROFILE_ENV,
    REPO,
    RESULTS_ENV,
    TARGETS,
    SimProcess,
    live_frame,
    log,
    target_met,
)

#: The keys of the last line, in this order (the issue's contract).
JSON_KEYS: Final = (
    "decode_us_ours",
    "decode_us_aiobmsble",
    "decode_speedup",
    "serial_cycle_ms",
    "serial_wire_ms",
    "serial_cycle_ratio",
    "ble_writes_per_poll",
    "ble_connects_per_poll_keep",
    "ble_connects_per_poll_release",
    "ha_update_ms_24s",
    "modules_10_all_fresh",
    "modules_10_cpu_s_per_min",
    "import_rss_kb",
    "import_ms",
)


def minutes() -> float:
    """Minutes of the ten-module run (``DALY_BENCH_MINUTES``, default 3)."""
    return float(os.environ.get(MINUTES_ENV) or DEFAULT_MINUTES)


def run_home_assistant(results_file: Path, *, skip_modules: bool, profile_dir: Path | None) -> dict[str, Any]:
    """Run ``benchmarks/test_ha_bench.py`` in the real HA test harness (a child pytest)."""
    env = {**os.environ, RESULTS_ENV: str(results_file), "PYTHONPATH": str(REPO)}
    if profile_dir is not None:
        env[PROFILE_ENV] = str(profile_dir)
    timeout = int(minutes() * 60 + 300)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks/test_ha_bench.py",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        f"timeout={timeout}",
        "--no-header",
        "-rN",
    ]
    if skip_modules:
        command += ["-k", "not ten_modules"]
    log(f"home assistant: {' '.join(command[2:])} (ten modules for {minutes():g} min of real time)")
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    log(f"home assistant: pytest finished in {time.monotonic() - started:.0f} s with exit code {result.returncode}")
    if result.returncode != 0:
        print(result.stdout[-6000:], file=sys.stderr)
        print(result.stderr[-3000:], file=sys.stderr)
        raise RuntimeError(f"the Home Assistant benchmark failed (pytest exit code {result.returncode})")
    data: dict[str, Any] = json.loads(results_file.read_text())
    return data


def profile_decode_and_serial(profile_dir: Path) -> None:
    """Profile 20000 decodes and 20 poll cycles (against a pty simulator) with cProfile."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    frame = live_frame()
    for name, function in (("decode_ours", decode.ours()), ("decode_aiobmsble", decode.aiobmsble())):
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(20000):
            function(frame)
        profiler.disable()
        _dump(profiler, profile_dir / f"{name}.prof", name)
    with SimProcess([f"pty:16:{BAUDRATE}"]) as sims:
        profiler = cProfile.Profile()

        async def polls() -> None:
            client = DalyClient(SerialTransport(sims.urls[0]))
            await client.poll()
            profiler.enable()
            for _ in range(20):
                await client.poll()
            profiler.disable()
            await client.close()

        asyncio.run(polls())
        _dump(profiler, profile_dir / "serial_poll.prof", "serial_poll (20 cycles)")


def _dump(profiler: cProfile.Profile, path: Path, title: str) -> None:
    profiler.dump_stats(path)
    log(f"profile {title} → {path}")
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(12)


def _fmt(value: object, digits: int = 2) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(results: dict[str, Any]) -> str:
    """The human-readable table (targets marked)."""
    rows: list[tuple[str, str, str, str]] = []

    def row(key: str, label: str, digits: int = 2) -> None:
        value = results.get(key)
        target = ""
        if key in TARGETS:
            op, goal = TARGETS[key]
            met = target_met(key, value)
            target = f"{op} {goal}  {'met' if met else ('NOT MET' if met is False else 'n/a')}"
        rows.append((key, label, _fmt(value, digits), target))

    row("import_rss_kb", "memory importing every module of the integration adds to HA [kB]", 0)
    row("import_ms", "time importing them takes [ms]", 1)
    row("decode_us_ours", "decode live block (captured 16S), ours [µs]")
    row("decode_us_aiobmsble", "decode live block (captured 16S), aiobmsble 0.31.0 [µs]")
    row("decode_speedup", "aiobmsble / ours")
    row("decode_us_aiobmsble_derived", "  aiobmsble with its derived values (async_update path) [µs]")
    row("crc_us_ours", "  of it: CRC of the frame, ours (a table look-up per byte) [µs]")
    row("crc_us_aiobmsble", "  of it: CRC of the frame, aiobmsble (bit by bit) [µs]")
    for cells, growth in sorted(results.get("decode_growth", {}).items(), key=lambda item: int(item[0])):
        rows.append(
            (
                f"decode_us_{cells}s",
                f"decode simulated {cells}S: ours / aiobmsble [µs] (speedup)",
                f"{growth['ours']:.2f} / {growth['aiobmsble']:.2f} ({growth['aiobmsble'] / growth['ours']:.2f})",
                "",
            )
        )
    row("serial_cycle_ms", "poll cycle over pty at 9600 baud, median of 50 [ms]")
    row("serial_cycle_p90_ms", "poll cycle, 90th percentile [ms]")
    row("serial_wire_ms", "wire time of one cycle (191 bytes × 10 / 9600) [ms]")
    row("serial_cycle_ratio", "cycle / wire time", 3)
    row("serial_floor_ms", "raw reference client, same link (floor) [ms]")
    row("serial_settings_cycle_ms", "poll(settings=True) cycle, median of 20 [ms]")
    row("serial_settings_wire_ms", "its wire time [ms]")
    row("ble_writes_per_poll", "BLE writes per poll (keep connected, 100 polls)")
    row("ble_connects_per_poll_keep", "BLE connects per poll after the first (keep connected)")
    row("ble_connects_per_poll_release", "BLE connects per poll (release mode)")
    for cells in CELL_COUNTS:
        entities = results.get(f"ha_entities_{cells}s")
        row(f"ha_update_ms_{cells}s", f"HA update loop CPU, {cells}S paced, {entities} entities [ms]", 3)
    row("ha_update_ms_24s_unpaced", "HA update loop CPU, 24S, each reply in one piece [ms]", 3)
    row("ha_update_ms_24s_bytewise", "HA update loop CPU, 24S, replies byte by byte [ms]", 3)
    row("ha_update_listeners_ms_24s", "  of it: listeners / entity state writes, 24S [ms]", 3)
    row("ha_update_insights_ms_24s", "  of it: the pack insights' observation, 24S [ms]", 3)
    row("ha_update_wall_ms_24s", "HA update wall time, 24S paced [ms]", 1)
    row("modules_10_all_fresh", "10 modules × 24S at 5 s: every update in time")
    row("modules_10_cpu_s_per_min", "10 modules: HA process CPU [s per minute]", 3)
    row("modules_10_minutes", "10 modules: real minutes run")
    row("modules_10_updates", "10 modules: updates (all modules)")
    row("modules_10_failed_updates", "10 modules: failed updates")
    row("modules_10_max_gap_s", "10 modules: longest gap between updates [s]")
    row("modules_10_max_loop_lag_ms", "10 modules: worst event-loop lag (100 ms probe) [ms]", 1)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("key", "what", "value", "target")
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run everything, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", type=Path, metavar="DIR", help="write cProfile profiles to DIR")
    parser.add_argument("--skip-modules", action="store_true", help="leave out the ten-module run")
    args = parser.parse_args(argv)
    started = time.monotonic()

    log(f"imports: every module of the integration, in {imports.RUNS} fresh interpreters")
    results: dict[str, Any] = imports.run()
    log("decode: ours vs aiobmsble on the captured live block, then 4/8/16/24 cells")
    decoded = decode.run()
    results.update({key: value for key, value in decoded.items() if key != "growth"})
    results["decode_growth"] = decoded["growth"]
    results.update(links.run())
    if args.profile is not None:
        profile_decode_and_serial(args.profile)
    with tempfile.TemporaryDirectory(prefix="daly-bench-") as folder:
        results.update(
            run_home_assistant(Path(folder) / "ha.json", skip_modules=args.skip_modules, profile_dir=args.profile)
        )
    results.setdefault("modules_10_all_fresh", None)
    results.setdefault("modules_10_cpu_s_per_min", None)
    log(f"done in {time.monotonic() - started:.0f} s")

    print(table(results))
    line = {key: _round(results.get(key)) for key in JSON_KEYS}
    print(json.dumps(line))
    return 0


def _round(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value


if __name__ == "__main__":
    sys.exit(main())
