"""Generated documentation stays in step with the register table."""

from __future__ import annotations

from pathlib import Path
import re

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def test_register_docs_are_current() -> None:
    expected = load_script("gen_register_docs.py").render()
    assert (ROOT / "docs" / "registers.md").read_text(encoding="utf-8") == expected, (
        "docs/registers.md is stale: run scripts/gen_register_docs.py"
    )


def test_readme_links_point_at_files() -> None:
    """Every image and document the README links to is in the repository."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(((?:docs/|custom_components/|CHANGELOG)[^)#]+)\)", readme)
    assert any(target.endswith(".png") for target in targets)
    assert "CHANGELOG.md" in targets
    for target in targets:
        assert (ROOT / target).is_file(), target


def test_readme_states_the_code_s_numbers() -> None:
    """The figures the README gives (docs-data-update, repairs, connect bound) are the code's."""
    from aiodalybalancer.transport import CONNECT_TIMEOUT
    from custom_components.daly_active_balance.checks import (
        CELL_HYSTERESIS,
        CLEAR_AFTER,
        DOUBT_AFTER,
        PACK_HYSTERESIS,
        RAISE_AFTER,
    )
    from custom_components.daly_active_balance.const import DEFAULT_SETTINGS_EVERY, DEFAULT_UPDATE_INTERVAL

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    for text in (
        f"update interval (default {DEFAULT_UPDATE_INTERVAL} s",
        f"every {DEFAULT_SETTINGS_EVERY} updates by default",
        f"did not accept a connection within {CONNECT_TIMEOUT:g} s",
        f"hold for {RAISE_AFTER} updates in a row",
        f"for {CLEAR_AFTER} updates before it clears",
        f"{CELL_HYSTERESIS:g} V per cell, {PACK_HYSTERESIS:g} V for the pack",
        f"stopped answering after {RAISE_AFTER} unanswered updates in a row",
        f"For {DOUBT_AFTER / 60:g} minutes the module's own balancing reports",
    ):
        assert text in readme, text


def test_readme_says_where_to_send_diagnostics_and_which_balancing_sensors_are_enabled() -> None:
    """The troubleshooting row of "help verify balancing" links the module report form on the
    manifest's issue tracker, as the repair does; the entities table says of each balancing
    sensor what its description does by default."""
    import json

    from custom_components.daly_active_balance.binary_sensor import BINARY_SENSORS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    manifest = json.loads((ROOT / "custom_components" / "daly_active_balance" / "manifest.json").read_text())
    row = next(line for line in readme.splitlines() if line.startswith('| Repair "help verify balancing"'))
    assert f"({manifest['issue_tracker']}/new?template=module_report.yml)" in row
    assert (ROOT / ".github" / "ISSUE_TEMPLATE" / "module_report.yml").is_file()
    names = {
        "balancing": "Balancing",
        "balancing_expected": "Balancing expected",
        "cell_balancing_1": "Cell N balancing",
    }
    for description in BINARY_SENSORS:
        if description.key in names:
            row = next(line for line in readme.splitlines() if line.startswith(f"| {names[description.key]} |"))
            enabled = description.entity_registry_enabled_default
            assert ("| enabled by default" if enabled else "| disabled by default") in row, row
