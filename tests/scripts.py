"""The repository's scripts (scripts/ is not a package) as modules, for the tests."""

from __future__ import annotations

from functools import cache
import importlib.util
from pathlib import Path
import sys
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@cache
def load_script(relative: str) -> ModuleType:
    """``scripts/<relative>`` loaded by its path, once, and registered in ``sys.modules`` (a
    dataclass looks its module up there)."""
    name = "daly_script_" + relative.removesuffix(".py").replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / relative)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
