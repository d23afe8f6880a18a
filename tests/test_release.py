"""scripts/release.py: the release workflow's tag check, zip and notes."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
import zipfile

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
COMPONENT = ROOT / "custom_components" / "daly_active_balance"


@pytest.fixture(scope="module")
def release() -> ModuleType:
    return load_script("release.py")


def _version() -> str:
    return str(json.loads((COMPONENT / "manifest.json").read_text(encoding="utf-8"))["version"])


def test_version_is_0_2_0_everywhere() -> None:
    assert _version() == "0.2.0"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [0.2.0] - " in changelog
    assert "## [Unreleased]" in changelog


def test_release_zip_holds_the_integration_at_its_root(release: ModuleType, tmp_path: Path) -> None:
    assert release.main(["--tag", f"v{_version()}", "--out", str(tmp_path)]) == 0
    hacs = json.loads((ROOT / "hacs.json").read_text(encoding="utf-8"))
    assert hacs["zip_release"] is True
    with zipfile.ZipFile(tmp_path / hacs["filename"]) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    expected = {
        path.relative_to(COMPONENT).as_posix()
        for path in COMPONENT.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert names == expected
    assert {"manifest.json", "__init__.py", "strings.json", "translations/en.json"} <= names
    assert manifest["version"] == _version()
    notes = (tmp_path / "release-notes.md").read_text(encoding="utf-8")
    assert "serialx" in notes
    assert "## [" not in notes  # one section only


def test_a_tag_that_is_not_the_manifest_version_is_refused(
    release: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert release.main(["--tag", "v9.9.9", "--out", str(tmp_path)]) == 1
    assert f"tag v9.9.9 does not match the manifest's version {_version()}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_version_without_a_changelog_section_is_refused(release: ModuleType) -> None:
    text = "# Changelog\n\n## [0.3.0] - 2027-01-01\n\n### Added\n- x\n\n## [0.1.0] - 2026-11-24\n- y\n"
    assert release.changelog_section("0.3.0", text) == "### Added\n- x\n"
    with pytest.raises(release.ReleaseError, match=r"no section for 0\.2\.0"):
        release.changelog_section("0.2.0", text)


def test_a_manifest_that_does_not_pin_the_library_s_version_is_refused(
    release: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The workflow publishes the library's version; a manifest naming another would install nothing."""
    assert release.main(["--tag", f"v{_version()}", "--library-version"]) == 0
    assert capsys.readouterr().out == f"version={release.library_version()}\n"
    monkeypatch.setattr(release, "library_version", lambda: "9.9.9")
    assert release.main(["--tag", f"v{_version()}", "--out", str(tmp_path)]) == 1
    assert "manifest.json must require aiodalybalancer==9.9.9" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
