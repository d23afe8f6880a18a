"""The library runs without Home Assistant.

What import-linter cannot see (it reads import statements; the repository's ``lint-imports``
contracts forbid Home Assistant in the library and the library's tools in the integration) is
checked here at run time: every module imports with Home Assistant blocked, and the command-line
tool's import loads neither Home Assistant nor bleak.
"""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import aiodalybalancer

PACKAGE_DIR = Path(aiodalybalancer.__file__).parent

_BLOCK = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'homeassistant':\n"
    "            raise ImportError('homeassistant is blocked')\n"
    "sys.meta_path.insert(0, Block())\n"
    f"sys.path.insert(0, {str(PACKAGE_DIR.parent)!r})\n"
    "import importlib\n"
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _BLOCK + code], capture_output=True, text=True, check=False)


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_imports_with_homeassistant_blocked() -> None:
    modules = _modules()
    assert {"aiodalybalancer.client", "aiodalybalancer.transport_ble", "aiodalybalancer.tools.cli"} <= set(modules)
    result = _run(
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'homeassistant']\n"
        "print('ok', len(sys.modules))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_the_block_is_real() -> None:
    """The check itself: an import of Home Assistant fails under the block."""
    result = _run("import homeassistant.core\n")
    assert result.returncode != 0
    assert "homeassistant is blocked" in result.stderr


def test_the_command_line_tool_loads_no_homeassistant_and_no_bleak() -> None:
    """``daly-balancer`` on a serial link needs neither; Bluetooth loads bleak when asked for."""
    result = _run(
        "importlib.import_module('aiodalybalancer.tools.cli')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'homeassistant', 'bleak', 'bleak_retry_connector'}))\n"
        "from aiodalybalancer import BleTransport\n"
        "print(BleTransport.__module__, 'bleak' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "aiodalybalancer.transport_ble True"]
