"""The layers: the protocol runs without Home Assistant; the shipped package holds only what it runs."""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

import custom_components.daly_active_balance as integration_pkg
import custom_components.daly_active_balance.protocol as protocol_pkg
import daly_tools

PROTOCOL_DIR = Path(protocol_pkg.__file__).parent
SHIPPED_DIR = Path(integration_pkg.__file__).parent
TOOLS_DIR = Path(daly_tools.__file__).parent
#: Top-level packages of the repository that HACS does not install.
UNSHIPPED = {"daly_tools", "tests", "benchmarks", "reliability", "scripts"}


def _absolute_imports(path: Path) -> list[str]:
    """Every module ``path`` imports by absolute name (relative imports stay inside its package)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_no_homeassistant_import_in_source() -> None:
    for path in PROTOCOL_DIR.glob("*.py"):
        names = _absolute_imports(path)
        assert not any(n.split(".")[0] == "homeassistant" for n in names), f"{path.name} imports {names}"


def test_shipped_package_imports_no_tool_or_test_double() -> None:
    """Nothing HACS installs imports the simulator, the stand-in, the CLI, tests or benchmarks."""
    paths = sorted(SHIPPED_DIR.rglob("*.py"))
    assert PROTOCOL_DIR / "client.py" in paths
    for path in paths:
        names = _absolute_imports(path)
        assert not [n for n in names if n.split(".")[0] in UNSHIPPED], f"{path.name} imports {names}"
    assert "daly_tools" in _absolute_imports(Path(__file__))  # the check sees such an import


def test_tools_are_not_in_the_shipped_package() -> None:
    """No module of the tools package has a namesake in the shipped package."""
    tools = {path.name for path in TOOLS_DIR.glob("*.py")} - {"__init__.py"}
    assert {"simulator.py", "ble_standin.py", "cli.py", "a5_device.py", "factory.py"} <= tools
    shipped = {path.name for path in SHIPPED_DIR.rglob("*.py")}
    assert not tools & shipped


def test_every_module_imports_with_homeassistant_blocked() -> None:
    modules = sorted(p.stem for p in PROTOCOL_DIR.glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'homeassistant':\n"
        "            raise ImportError('homeassistant is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.path.insert(0, {str(PROTOCOL_DIR.parent)!r})\n"
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('protocol.' + name)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'homeassistant']\n"
        "print('ok', len(sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
