"""Import cost: the memory and time that importing the integration adds to Home Assistant.

Each measurement is a fresh interpreter (``python -m benchmarks.imports``, which imports nothing
of the integration at its top). It first imports everything the integration's modules import by
absolute name (Home Assistant's modules, the protocol library's requirements such as
``bleak_retry_connector`` and ``serialx``, the standard library), all of which a Home Assistant
that loads the integration holds anyway, and reads its resident memory. Then it imports every
module of ``custom_components/daly_active_balance`` and reads it again. The difference is what
the integration itself costs: its code, its tables and whatever it builds at import, the protocol
library it imports (aiodalybalancer, which only this integration brings) included.
"""

from __future__ import annotations

import ast
import gc
import importlib
import importlib.util
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import time
from typing import Final

REPO: Final = Path(__file__).resolve().parent.parent
PACKAGE: Final = "custom_components.daly_active_balance"
PACKAGE_DIR: Final = REPO / "custom_components" / "daly_active_balance"
#: The protocol library's requirements, imported before the baseline reading (Home Assistant's
#: bluetooth and usb integrations hold them anyway).
REQUIREMENTS: Final = ("bleak_retry_connector", "serialx")
#: Ours, so measured with the integration, never part of the baseline.
OWN: Final = ("custom_components", "aiodalybalancer")
#: Fresh interpreters measured; the medians are reported.
RUNS: Final = 5


def integration_modules() -> list[str]:
    """Every module of the integration, by its dotted name (packages first)."""
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py"), key=lambda p: (p.name != "__init__.py", p)):
        parts = path.relative_to(REPO).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def dependencies() -> list[str]:
    """What the integration imports by absolute name from outside itself (modules and submodules)."""
    found: set[str] = set(REQUIREMENTS)
    for path in PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                # ``from homeassistant.components import usb`` imports a module by its name.
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return sorted(name for name in found if name.split(".")[0] not in OWN)


def _rss_kb() -> int:
    """Resident memory of this process in kB (after a collection)."""
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def measure() -> dict[str, float]:
    """In this (fresh) interpreter: import the dependencies, then the integration."""
    for name in dependencies():
        if _importable(name):
            importlib.import_module(name)
    before = _rss_kb()
    started = time.perf_counter()
    for name in integration_modules():
        importlib.import_module(name)
    elapsed = time.perf_counter() - started
    return {"import_rss_kb": _rss_kb() - before, "import_ms": elapsed * 1000}


def run() -> dict[str, float]:
    """Medians of ``RUNS`` fresh interpreters."""
    results = []
    for _ in range(RUNS):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.imports"], cwd=REPO, capture_output=True, text=True, check=True
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(result[key] for result in results) for key in ("import_rss_kb", "import_ms")}


if __name__ == "__main__":
    print(json.dumps(measure()))
