"""The protocol layer runs without Home Assistant."""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

import custom_components.daly_active_balance.protocol as protocol_pkg

PROTOCOL_DIR = Path(protocol_pkg.__file__).parent


def test_no_homeassistant_import_in_source() -> None:
    for path in PROTOCOL_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "homeassistant" for n in names), f"{path.name} imports {names}"


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
