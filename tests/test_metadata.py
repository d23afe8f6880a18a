"""Offline checks standing in for hassfest and HACS validation (they run on GitHub, not here)."""

from __future__ import annotations

import json
from pathlib import Path
import re
import tomllib
from typing import Any

from homeassistant.const import __version__ as HA_VERSION
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPONENT = ROOT / "custom_components" / "daly_active_balance"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _library() -> dict[str, Any]:
    """The [project] table of the library's pyproject.toml."""
    with (ROOT / "packages" / "aiodalybalancer" / "pyproject.toml").open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def test_manifest_pins_the_library_at_its_version() -> None:
    """The manifest's pin, the library's pyproject and its ``__version__`` name one version."""
    import aiodalybalancer

    version = _library()["version"]
    assert _json(COMPONENT / "manifest.json")["requirements"] == [f"aiodalybalancer=={version}"]
    assert aiodalybalancer.__version__ == version
    changelog = (ROOT / "packages" / "aiodalybalancer" / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {version}" in changelog


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
    # The cells card is served when the frontend is there (card.py), without making it a must.
    assert manifest["after_dependencies"] == ["frontend", "http", "usb"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    # One requirement: the protocol library, pinned exactly (as Home Assistant core pins its own
    # libraries); what it needs carries lower bounds only (docs/compatibility.md).
    assert manifest["requirements"] == [f"aiodalybalancer=={_library()['version']}"]
    for requirement in _library()["dependencies"]:
        assert re.fullmatch(r"[a-z0-9-]+>=\d+(\.\d+)*", requirement), requirement
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
    from custom_components.daly_active_balance.issues import ISSUES

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


CONSTRAINTS = ROOT / "tests" / "fixtures" / "constraints"


def _pins(constraints: str) -> dict[str, Version]:
    """``name == version`` lines of a package_constraints.txt, by canonical name."""
    pins = {}
    for raw in constraints.splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line and ";" not in line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = Version(next(iter(requirement.specifier)).version)
    return pins


def unsatisfied(requirements: list[str], constraints: str) -> list[str]:
    """The requirements a release's pins rule out: Home Assistant would refuse to install them."""
    pins = _pins(constraints)
    bad = []
    for line in requirements:
        requirement = Requirement(line)
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is not None and not requirement.specifier.contains(pinned, prereleases=True):
            bad.append(f"{line} (pinned {pinned})")
    return bad


def test_constraint_check_catches_a_pin_home_assistant_moved() -> None:
    """The check itself: the 0.1.0 manifest's exact pin is refused by 2026.11.0's constraints."""
    newer = (CONSTRAINTS / "2026.11.0.txt").read_text(encoding="utf-8")
    assert unsatisfied(["serialx==1.11.0"], newer) == ["serialx==1.11.0 (pinned 1.15.1)"]
    assert unsatisfied(["serialx>=1.11.0", "not-pinned>=1"], newer) == []


def test_requirements_install_on_every_supported_release() -> None:
    """Every vendored release's constraints satisfy the manifest (scripts/refresh-constraints)."""
    manifest = _json(COMPONENT / "manifest.json")
    releases = sorted(CONSTRAINTS.glob("*.txt"), key=lambda path: Version(path.stem))
    assert releases[0].stem == _json(ROOT / "hacs.json")["homeassistant"]
    assert len(releases) >= 2, "vendor the newest release too: scripts/refresh-constraints"
    for path in releases:
        constraints = path.read_text(encoding="utf-8")
        # Every requirement of the library is one Home Assistant pins: we ride on its versions,
        # never fight them. The library itself is ours: no release pins it.
        library = _library()["dependencies"]
        assert {canonicalize_name(Requirement(r).name) for r in library} <= set(_pins(constraints))
        assert not unsatisfied([*library, *manifest["requirements"]], constraints), path.name
    # The test environment is the oldest supported release, with that release's pins.
    oldest_pins = _pins(releases[0].read_text(encoding="utf-8"))
    for raw in (ROOT / "requirements_test.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-e "):  # the library, from this repository
            continue
        pinned = oldest_pins.get(canonicalize_name(Requirement(line).name)) if line else None
        if pinned is not None:
            assert Requirement(line).specifier.contains(pinned, prereleases=True), line


def test_supported_range_is_stated_once() -> None:
    """hacs.json names the oldest supported release; the README and the test harness agree."""
    oldest = _json(ROOT / "hacs.json")["homeassistant"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Requires Home Assistant {oldest} or newer" in readme
    assert oldest == HA_VERSION


def _leaves(tree: Any, path: str = "") -> dict[str, str]:
    if isinstance(tree, dict):
        found: dict[str, str] = {}
        for key, value in tree.items():
            found |= _leaves(value, f"{path}.{key}" if path else key)
        return found
    return {path: tree}


PLACEHOLDER = re.compile(r"\{(\w+)\}")
#: Every language the integration and its card ship; translations/ holds exactly these.
LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pl", "cs")
#: Markdown a translation keeps as it is: link targets, bare URLs, bold spans, list items, line breaks.
LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)")
SCHEME = r"\b(?:https?|socket|tcp|rfc2217|esphome)://"
#: A URL with a host or path, as written (``rfc2217://`` alone may take a grammatical suffix).
URL = re.compile(SCHEME + r"[\w…][^\s),]*")


def _markdown(text: str) -> tuple[list[str], list[str], list[str], int, int, int]:
    return (
        sorted(LINK_TARGET.findall(text)),
        sorted(re.findall(SCHEME, text)),
        sorted(URL.findall(text)),
        text.count("**"),
        len(re.findall(r"^- ", text, flags=re.MULTILINE)),
        text.count("\n"),
    )


def test_every_language_file_is_listed() -> None:
    """translations/ holds one file per listed language: a new one is tested as soon as it is added."""
    assert {path.stem for path in (COMPONENT / "translations").glob("*.json")} == set(LANGUAGES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_translation_covers_every_string_with_its_placeholders(language: str) -> None:
    """Exactly the keys of strings.json (hassfest refuses others), each string non-empty with its
    {placeholders}, links, URLs, bold spans and list items."""
    strings = _leaves(_json(COMPONENT / "strings.json"))
    translated = _leaves(_json(COMPONENT / "translations" / f"{language}.json"))
    assert sorted(set(strings) - set(translated)) == [], "missing"
    assert sorted(set(translated) - set(strings)) == [], "not in strings.json"
    for key, text in strings.items():
        assert isinstance(translated[key], str), key
        assert translated[key].strip() == translated[key] != "", key
        assert sorted(PLACEHOLDER.findall(translated[key])) == sorted(PLACEHOLDER.findall(text)), key
        assert _markdown(translated[key]) == _markdown(text), key
        assert "[%key:" not in translated[key], key


@pytest.mark.parametrize("language", [language for language in LANGUAGES if language != "en"])
def test_translation_is_translated(language: str) -> None:
    """Each file is a translation, not a copy: most texts differ from the English ones."""
    strings = _leaves(_json(COMPONENT / "strings.json"))
    translated = _leaves(_json(COMPONENT / "translations" / f"{language}.json"))
    same = [key for key, text in strings.items() if translated[key] == text and len(text) > 12]
    assert len(same) <= len(strings) // 10, same


def test_translations_missing_script_lists_the_gaps(tmp_path: Path) -> None:
    """scripts/translations_missing.py names, per language, the keys of en.json it lacks."""
    import subprocess
    import sys

    folder = tmp_path / "translations"
    folder.mkdir()
    (folder / "en.json").write_text(json.dumps({"a": {"b": "B", "c": "C"}, "d": "D"}), encoding="utf-8")
    (folder / "fr.json").write_text(json.dumps({"a": {"b": "Bé"}, "d": "Dé", "x": "X"}), encoding="utf-8")
    (folder / "de.json").write_text(json.dumps({"a": {"b": "B", "c": "C"}, "d": "D"}), encoding="utf-8")
    script = ROOT / "scripts" / "translations_missing.py"
    gaps = subprocess.run([sys.executable, script, folder], capture_output=True, text=True, check=False)
    assert gaps.returncode == 1, gaps.stderr
    assert gaps.stdout.splitlines() == ["fr: 1 missing", "  a.c", "fr: 1 not in en.json", "  x"]
    complete = subprocess.run([sys.executable, script], capture_output=True, text=True, check=False)
    assert (complete.returncode, complete.stdout) == (0, ""), complete.stdout + complete.stderr
