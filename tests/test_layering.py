"""The layers (docs/architecture.md): the protocol is a library of its own, the integration sits on it.

The import rules are import-linter contracts in pyproject.toml (``lint-imports``, which
scripts/test runs too): the library imports no Home Assistant, the integration imports none of
the library's tools, tests or benchmarks. The library's own tests check at run time that every
module of it imports with Home Assistant blocked (packages/aiodalybalancer/tests/test_layering.py).
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess
import sys
import tomllib
from typing import Any

import aiodalybalancer

ROOT = Path(__file__).resolve().parents[1]
COMPONENT = ROOT / "custom_components" / "daly_active_balance"
LIBRARY = ROOT / "packages" / "aiodalybalancer" / "src" / "aiodalybalancer"


def _lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert tool is not None, "lint-imports is not installed: it comes with requirements_test.txt"
    return subprocess.run(
        [tool, "--no-cache"], capture_output=True, text=True, cwd=cwd, env=env, check=False, timeout=120
    )


def test_the_integration_holds_no_protocol() -> None:
    """What HACS installs holds no copy of the library: no protocol folder, no namesake of its modules."""
    assert Path(aiodalybalancer.__file__).resolve().parent == LIBRARY
    assert not (COMPONENT / "protocol").exists()
    library = {path.name for path in LIBRARY.rglob("*.py")} - {"__init__.py"}
    assert {"registers.py", "frames.py", "stream.py", "client.py", "transport.py", "simulator.py"} <= library
    assert not library & {path.name for path in COMPONENT.rglob("*.py")}


def test_import_contracts_are_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_config_flow_imports_no_coordinator() -> None:
    """The flow probes through ``link.create_transport``: loading it loads no coordinator.

    Home Assistant loads the package before its flow, and the package sets up through the
    coordinator, so the flow is loaded here beside an empty package: what it loads is its own.
    Its type annotations may name the coordinator's entry type (not imported at run time).
    """
    code = f"""
import sys, types
package = types.ModuleType("custom_components.daly_active_balance")
package.__path__ = [{str(COMPONENT)!r}]
sys.modules[package.__name__] = package
import custom_components.daly_active_balance.config_flow
loaded = sorted(name for name in sys.modules if name.startswith(package.__name__ + "."))
assert package.__name__ + ".coordinator" not in loaded, loaded
assert package.__name__ + ".link" in loaded, loaded
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_broken_contract_fails(tmp_path: Path) -> None:
    """The check itself: a library module importing Home Assistant breaks the first contract."""
    package = tmp_path / "aiodalybalancer"
    shutil.copytree(LIBRARY, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "sneaky.py").write_text('"""Reaches up."""\n\nimport homeassistant.core\n', encoding="utf-8")
    (tmp_path / "custom_components").mkdir()
    shutil.copytree(
        COMPONENT, tmp_path / "custom_components" / "daly_active_balance", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = _lint_imports(tmp_path, env)
    assert result.returncode != 0
    assert "The library imports no Home Assistant and nothing of the integration BROKEN" in result.stdout
    assert "aiodalybalancer.sneaky -> homeassistant (l.3)" in result.stdout


def test_the_library_lints_by_the_repository_s_rules() -> None:
    """Its pyproject.toml writes the rules out (its sdist stands alone): they stay the repository's."""

    def ruff(path: Path) -> dict[str, Any]:
        with path.open("rb") as file:
            return dict(tomllib.load(file)["tool"]["ruff"])

    root, library = ruff(ROOT / "pyproject.toml"), ruff(LIBRARY.parents[1] / "pyproject.toml")
    assert library["target-version"] == "py312"
    assert library["line-length"] == root["line-length"]
    for key in ("select", "ignore"):
        assert library["lint"][key] == root["lint"][key], key
    assert library["lint"]["per-file-ignores"]["tests/**"] == root["lint"]["per-file-ignores"]["tests/**"]
