"""The integration's modules: none is named after a Home Assistant platform it does not
implement, and their imports form no circle (imports under TYPE_CHECKING included)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from homeassistant.config_entries import ConfigFlow
from homeassistant.const import Platform
from homeassistant.loader import BASE_PRELOAD_PLATFORMS
import pytest

from custom_components.daly_active_balance import PLATFORMS

PACKAGE = "custom_components.daly_active_balance"
COMPONENT = Path(__file__).parents[1] / "custom_components" / "daly_active_balance"

#: What Home Assistant calls in the platforms it loads from every integration by module name:
#: a module of that name must define one of these. A platform missing here is one the
#: integration has no business naming a module after.
_PRELOADED_HOOKS: dict[str, tuple[str, ...]] = {
    "diagnostics": ("async_get_config_entry_diagnostics", "async_get_device_diagnostics"),
    "repairs": ("async_create_fix_flow",),
    "system_health": ("async_register",),
}


def _modules() -> dict[str, Path]:
    """Every module of the integration by dotted name relative to the package ("" = the package)."""
    found = {}
    for path in COMPONENT.rglob("*.py"):
        parts = path.relative_to(COMPONENT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The integration's modules that ``name`` imports, relative or absolute, at any depth of its code."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [part for part in package if part]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith(PACKAGE):
                module = node.module.removeprefix(PACKAGE).lstrip(".")
            else:
                continue
            # ``from . import x`` imports the module ``x`` when there is one.
            candidates = [".".join(filter(None, [module, alias.name])) for alias in node.names]
            targets.update(c for c in candidates if c in modules)
            if module in modules and not any(c in modules for c in candidates):
                targets.add(module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE):
                    targets.add(alias.name.removeprefix(PACKAGE).lstrip("."))
    targets.discard(name)
    return targets


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph``, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            if (found := visit(target, [*path, node])) is not None:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        if (found := visit(start, [])) is not None:
            return found
    return None


def test_no_import_circle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["coordinator"], "the walk found no import at all"
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_circle() -> None:
    """The check itself: ``issues`` importing the coordinator back, as ``repairs`` did."""
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "issues" in graph["coordinator"]
    graph["issues"] = graph["issues"] | {"coordinator"}
    assert _cycle(graph) == ["coordinator", "issues", "coordinator"]


@pytest.mark.parametrize("name", sorted(p.stem for p in COMPONENT.glob("*.py") if p.stem != "__init__"))
def test_no_module_named_after_a_platform_it_does_not_implement(name: str) -> None:
    """Home Assistant loads ``<domain>.<platform>`` by name: an entity platform module must be set
    up (listed in PLATFORMS, with ``async_setup_entry``), and a module named after a platform
    Home Assistant preloads must define what that platform requires."""
    module = importlib.import_module(f"{PACKAGE}.{name}")
    if name in {platform.value for platform in Platform}:
        assert Platform(name) in PLATFORMS, name
        assert callable(getattr(module, "async_setup_entry", None)), name
    elif name == "config_flow":
        assert any(isinstance(item, type) and issubclass(item, ConfigFlow) for item in vars(module).values())
    elif name in BASE_PRELOAD_PLATFORMS:
        hooks = _PRELOADED_HOOKS.get(name, ())
        assert any(callable(getattr(module, hook, None)) for hook in hooks), (
            f"{name}.py is loaded as Home Assistant's {name} platform and lacks {hooks or 'a purpose there'}"
        )
