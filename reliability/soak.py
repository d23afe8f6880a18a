"""Fault-injection soak: the real coordinator inside Home Assistant's test harness, against the simulator.

    scripts/soak        # 1000 polls at 20 % faults (DALY_SOAK_POLLS or --polls; --fault-rate, --timeout, --seed)

Runs ``reliability/soak_harness.py`` through pytest (the harness's ``hass`` fixture is Home
Assistant's own test set-up), then a fuzz pass (``reliability/fuzz.py``, ``DALY_FUZZ_INPUTS``
inputs, 1,000,000 by default). Prints a summary, then one JSON object on the last line. Exits 1
when a value published was wrong, a write failed silently, a fuzz input raised something
unexpected, a bad CRC was accepted, or a task or descriptor outlived the unload.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "reliability" / "soak_harness.py"
DEFAULT_FUZZ_INPUTS = 1_000_000

#: Keys of the last line, in this order (the issue's list first).
KEYS = (
    "polls",
    "fault_rate",
    "wrong_values_published",
    "unavailable_polls",
    "recovery_polls_max",
    "fuzz_inputs",
    "fuzz_unexpected_exceptions",
    "bad_crc_accepted",
    "leaked_tasks",
    "leaked_fds",
)


def _fuzz() -> dict[str, Any]:
    """Run the fuzz loop in its own interpreter (apart from the harness's Home Assistant)."""
    env = {**os.environ, "DALY_FUZZ_INPUTS": os.environ.get("DALY_FUZZ_INPUTS", str(DEFAULT_FUZZ_INPUTS))}
    done = subprocess.run(
        [sys.executable, "-m", "reliability.fuzz"], capture_output=True, text=True, env=env, check=False, cwd=ROOT
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"the fuzz run printed nothing:\n{done.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _soak() -> dict[str, Any]:
    """Run the harness under pytest and read back what it measured."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "soak.json"
        os.environ["DALY_SOAK_RESULT"] = str(path)
        code = pytest.main(
            [str(HARNESS), "-q", "-p", "no:cacheprovider", "-o", "timeout=0", "--rootdir", str(ROOT), "-W", "ignore"]
        )
        if not path.exists():
            raise SystemExit(f"the soak did not finish (pytest exit code {code})")
        result: dict[str, Any] = json.loads(path.read_text())
        result["harness_passed"] = code == 0
        return result


def _arguments() -> None:
    """Command-line options override the environment (the harness reads the environment)."""
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, help="polls under faults (DALY_SOAK_POLLS, default 1000)")
    parser.add_argument("--fault-rate", type=float, help="share of exchanges that get a fault (default 0.2)")
    parser.add_argument("--timeout", type=float, help="the client's answer timeout in seconds (default 0.3)")
    parser.add_argument("--seed", type=int, help="seed of the fault draws")
    parser.add_argument(
        "--fuzz-inputs", type=int, help=f"fuzz inputs (DALY_FUZZ_INPUTS, default {DEFAULT_FUZZ_INPUTS})"
    )
    args = parser.parse_args()
    for name, value in (
        ("DALY_SOAK_POLLS", args.polls),
        ("DALY_SOAK_FAULT_RATE", args.fault_rate),
        ("DALY_SOAK_TIMEOUT", args.timeout),
        ("DALY_SOAK_SEED", args.seed),
        ("DALY_FUZZ_INPUTS", args.fuzz_inputs),
    ):
        if value is not None:
            os.environ[name] = str(value)


def main() -> int:
    """Soak, then fuzz; print the summary and the JSON line; exit 1 on any failure."""
    _arguments()
    soak = _soak()
    fuzz = _fuzz()
    result = {
        **{key: soak[key] for key in KEYS if key in soak},
        **{key: fuzz[key] for key in ("fuzz_inputs", "fuzz_unexpected_exceptions", "bad_crc_accepted")},
    }
    result = {key: result[key] for key in KEYS} | {
        key: value for key, value in soak.items() if key not in KEYS and not key.startswith("leaked_")
    }
    print()
    print(f"soak: {soak['polls']} polls, {soak['exchanges']} exchanges, measured fault rate {soak['fault_rate']:.1%}")
    print(f"  faults injected: {soak['faults']}")
    print(f"  wrong values published: {soak['wrong_values_published']} (entity states: {soak['wrong_entity_states']})")
    print(
        f"  unavailable polls: {soak['unavailable_polls']}; recovery after faults stop: max {soak['recovery_polls_max']} poll(s) over {soak['recovery_episodes']} episodes"
    )
    print(
        f"  writes under faults: {soak['writes']} ({soak['writes_verified']} verified, {soak['writes_reported_failed']} reported as failed, "
        f"{soak['writes_silently_failed']} failed silently); unrequested writes: {soak['unrequested_writes']}"
    )
    print(
        f"  after unload: {soak['leaked_tasks']} leaked tasks {soak['leaked_task_names']}, {soak['leaked_fds']} leaked fds {soak['leaked_fd_targets']}"
    )
    print(
        f"fuzz: {fuzz['fuzz_inputs']} inputs, {fuzz['fuzz_unexpected_exceptions']} unexpected exceptions, {fuzz['bad_crc_accepted']} bad CRCs accepted"
    )
    failed = (
        result["wrong_values_published"]
        or result["fuzz_unexpected_exceptions"]
        or result["bad_crc_accepted"]
        or result["leaked_tasks"]
        or result["leaked_fds"]
        or soak["writes_silently_failed"]
        or soak["unrequested_writes"]
        or not soak["harness_passed"]
    )
    print(json.dumps(result))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
