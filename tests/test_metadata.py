"""Offline checks standing in for hassfest and HACS validation (they run on GitHub, not here)."""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Any

import homeassistant
from homeassistant.const import __version__ as HA_VERSION
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPONENT = ROOT / "custom_components" / "daly_active_balance"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_manifest_keys_in_hassfest_order() -> None:
    manifest = _json(COMPONENT / "manifest.json")
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])


def test_manifest_content() -> None:
    manifest = _json(COMPONENT / "manifest.json")
    assert manifest["domain"] == COMPONENT.name
    assert manifest["config_flow"] is True
    assert manifest["integration_type"] == "device"
    assert manifest["iot_class"] == "local_polling"
    assert manifest["dependencies"] == ["bluetooth_adapters"]
    assert manifest["after_dependencies"] == ["usb"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    for requirement in manifest["requirements"]:
        assert re.fullmatch(r"[a-z0-9-]+==\d+(\.\d+)*", requirement), requirement
    for matcher in manifest["bluetooth"]:
        assert matcher["connectable"] is True
        assert set(matcher) <= {"local_name", "manufacturer_id", "service_uuid", "connectable"}
    for key in ("documentation", "issue_tracker"):
        assert manifest[key].startswith("https://")


def test_hacs_json() -> None:
    hacs = _json(ROOT / "hacs.json")
    allowed = {
        "name",
        "content_in_root",
        "zip_release",
        "filename",
        "hide_default_branch",
        "country",
        "homeassistant",
        "hacs",
        "persistent_directory",
    }
    assert set(hacs) <= allowed
    assert hacs["homeassistant"] == HA_VERSION, "hacs.json must name the Home Assistant version the tests run"


def test_english_translation_matches_strings() -> None:
    assert _json(COMPONENT / "translations" / "en.json") == _json(COMPONENT / "strings.json")


def test_no_key_references_in_custom_integration_strings() -> None:
    assert "[%key:" not in (COMPONENT / "strings.json").read_text()


def _code() -> str:
    return "\n".join(p.read_text() for p in COMPONENT.glob("*.py"))


def test_translation_keys_used_in_code_exist() -> None:
    strings = _json(COMPONENT / "strings.json")
    code = _code()
    for key in set(re.findall(r'translation_key="([a-z0-9_]+)"', code)):
        sections = [strings.get("exceptions", {}), strings.get("issues", {})]
        sections += list(strings.get("entity", {}).values())
        assert any(key in section for section in sections), key
    errors = strings["config"]["error"]
    for key in set(re.findall(r'ProbeError\("([a-z_]+)"\)', code)):
        assert key in errors, key
    for key in set(re.findall(r'"(not_found|cannot_open|timeout|no_answer)"', code)):
        assert key in errors, key


def test_every_config_error_is_used() -> None:
    """No flow error string is left that no code path can show (such as a catch-all "unknown")."""
    code = (COMPONENT / "config_flow.py").read_text()
    used = set(re.findall(r'ProbeError\("([a-z_]+)"\)', code)) | set(re.findall(r'"(not_found|cannot_open)"', code))
    used |= set(re.findall(r'"(timeout|no_answer)" if', code)) | set(re.findall(r'else "(no_answer)"', code))
    assert set(_json(COMPONENT / "strings.json")["config"]["error"]) == used


def test_typed_entry_alias_everywhere() -> None:
    """strict-typing: every module takes the typed ``DalyConfigEntry``; only its alias names ``ConfigEntry``."""
    for path in COMPONENT.glob("*.py"):
        for line in path.read_text().splitlines():
            if re.search(r"\bConfigEntry\b", line):
                assert path.name == "coordinator.py", (path.name, line)
                assert "import ConfigEntry" in line or "= ConfigEntry[" in line, line


def test_quality_scale_entity_event_setup_is_done() -> None:
    """The keep-connected switch subscribes in async_added_to_hass: the rule applies and is done."""
    rules = yaml.safe_load((COMPONENT / "quality_scale.yaml").read_text())["rules"]
    assert "async_added_to_hass" in (COMPONENT / "switch.py").read_text()
    assert rules["entity-event-setup"]["status"] == "done"


def test_issue_translations_exist() -> None:
    from custom_components.daly_active_balance.repairs import ISSUES

    issues = _json(COMPONENT / "strings.json")["issues"]
    for issue in ISSUES:
        assert {"title", "description"} <= set(issues[issue])


def test_flow_steps_have_strings() -> None:
    """Every step the config and options flows show has a title in strings.json, and no more."""
    strings = _json(COMPONENT / "strings.json")
    code = (COMPONENT / "config_flow.py").read_text()
    options_code = code[code.index("class DalyOptionsFlow") :]
    config_code = code[: code.index("class DalyOptionsFlow")]
    for section, source in (("config", config_code), ("options", options_code)):
        used = set(re.findall(r'step_id="([a-z_]+)"', source))
        assert used == set(strings[section]["step"]), section
        for step in used:
            texts = strings[section]["step"][step]
            assert texts.get("title") or texts.get("description"), (section, step)


@pytest.mark.parametrize("section", ["entity"])
def test_icons_refer_to_translated_entities(section: str) -> None:
    icons_path = COMPONENT / "icons.json"
    if not icons_path.exists():
        pytest.skip("no icons.json")
    icons = _json(icons_path).get(section, {})
    strings = _json(COMPONENT / "strings.json").get(section, {})
    for platform, entries in icons.items():
        for key in entries:
            assert key in strings.get(platform, {}), f"{platform}.{key}"


def test_quality_scale_statuses() -> None:
    rules = yaml.safe_load((COMPONENT / "quality_scale.yaml").read_text())["rules"]
    for name, rule in rules.items():
        status = rule if isinstance(rule, str) else rule["status"]
        assert status in {"done", "exempt", "todo"}, name
        if status == "exempt":
            assert rule["comment"], name


def test_brand_icon_is_256_square_png() -> None:
    data = (COMPONENT / "brand" / "icon.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (256, 256)


def test_requirements_are_the_pins_home_assistant_ships() -> None:
    """Pinned like core: the same versions HA itself pins, or HA would refuse to install them."""
    constraints = (Path(homeassistant.__file__).parent / "package_constraints.txt").read_text()
    pinned = {line.split("==")[0].lower(): line.strip() for line in constraints.splitlines() if "==" in line}
    manifest = _json(COMPONENT / "manifest.json")
    for requirement in manifest["requirements"]:
        name = requirement.split("==")[0].lower()
        if name in pinned:
            assert requirement == pinned[name], (requirement, pinned[name])
    tests = (ROOT / "requirements_test.txt").read_text().splitlines()
    for requirement in manifest["requirements"]:
        assert requirement in tests, requirement
