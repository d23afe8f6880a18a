"""scripts/ha_config/ha_setup.py for the tests: the helpers scripts/run calls (a script, not a package)."""

from __future__ import annotations

from functools import cache
import importlib.util
from pathlib import Path
from types import ModuleType

HA_SETUP = Path(__file__).resolve().parents[1] / "scripts" / "ha_config" / "ha_setup.py"


@cache
def load_ha_setup() -> ModuleType:
    """The script as a module, loaded by its path (once)."""
    spec = importlib.util.spec_from_file_location("daly_ha_setup", HA_SETUP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
