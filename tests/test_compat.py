"""The offline parts of scripts/compat: how it reads pip's and Home Assistant's answers.

The whole command (real Home Assistant releases from the package index) runs outside the suite:
`scripts/compat`, and on GitHub as a matrix. These tests pin what it decides from that output.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def driver() -> ModuleType:
    return load_script("ha_compat/driver.py")


@pytest.fixture(scope="module")
def exercise() -> ModuleType:
    return load_script("ha_compat/exercise.py")


CONFLICT = """\
ERROR: Cannot install serialx==1.11.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested serialx==1.11.0
    The user requested (constraint) serialx==1.15.1

Additionally, some packages in these conflicts have no matching distributions available for your environment:
    serialx

To fix this you could try to:
1. loosen the range of package versions you've specified
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""


def test_a_conflict_is_reported_by_what_conflicts(driver: ModuleType) -> None:
    assert driver._last_error(CONFLICT) == (
        "conflict: The user requested serialx==1.11.0; The user requested (constraint) serialx==1.15.1"
    )
    assert driver._last_error("x\nERROR: No matching distribution found for homeassistant==2099.1.0\n") == (
        "No matching distribution found for homeassistant==2099.1.0"
    )
    assert driver._unpublished("ERROR: No matching distribution found for aioesphomeapi==46.25.0") == (
        "aioesphomeapi==46.25.0"
    )
    assert driver._unpublished(CONFLICT) is None


def test_versions_and_aliases(driver: ModuleType) -> None:
    published = ["2026.11.0", "2026.10.4"]
    assert driver._resolve("newest", published) == "2026.11.0"
    assert driver._resolve("oldest", published) == driver.oldest_supported() == "2026.10.4"
    assert driver._resolve("2026.10.4", published) == "2026.10.4"
    assert driver._name("bleak-retry-connector>=4.7.1") == "bleak-retry-connector"
    assert driver._name("PyQRCode==1.2.1") == "pyqrcode"


def test_a_malformed_version_is_refused_before_anything_runs(driver: ModuleType, tmp_path: Path) -> None:
    assert driver.main(["2026.x", "--venvs", str(tmp_path / "venvs")]) == 2
    assert not (tmp_path / "venvs").exists()


LOG = """\
2026-12-01 19:51:20.100 WARNING (SyncWorker_0) [homeassistant.loader] We found a custom integration daly_active_balance which has not been tested by Home Assistant. This component might cause stability problems, be sure to disable it if you experience issues with Home Assistant
2026-12-01 19:51:21.000 ERROR (MainThread) [homeassistant.components.mqtt] something about mqtt
2026-12-01 19:51:22.000 DEBUG (MainThread) [custom_components.daly_active_balance.coordinator] Finished fetching data
2026-12-01 19:51:23.000 WARNING (MainThread) [custom_components.daly_active_balance.coordinator] Error fetching data
2026-12-01 19:51:24.000 ERROR (MainThread) [homeassistant.setup] Setup failed for custom integration 'daly_active_balance': Requirements for daly_active_balance not found: ['serialx==1.11.0'].
"""


def test_the_log_check_sees_warnings_about_the_integration_only(exercise: ModuleType, tmp_path: Path) -> None:
    log = tmp_path / "home-assistant.log"
    log.write_text(LOG, encoding="utf-8")
    problems = exercise._integration_log_problems(log)
    assert [line.split(" ", 3)[2] for line in problems] == ["WARNING", "ERROR"]
    assert "Error fetching data" in problems[0]
    assert "Requirements for daly_active_balance not found" in problems[1]
    assert exercise._integration_log_problems(tmp_path / "missing.log") == ["Home Assistant wrote no log"]


def test_a_core_that_failed_to_start_is_named(exercise: ModuleType, tmp_path: Path) -> None:
    log = tmp_path / "home-assistant.log"
    log.write_text(
        "2026-12-01 19:48:44.518 ERROR (SyncWorker_2) [homeassistant.util.package] Unable to install package pyotp\n"
        "2026-12-01 19:48:45.530 ERROR (MainThread) [homeassistant.bootstrap] Home Assistant core failed to initialize.\n",
        encoding="utf-8",
    )
    assert "Unable to install package pyotp" in exercise._core_failure(log)
    log.write_text("2026-12-01 19:48:44.518 INFO (MainThread) [homeassistant.bootstrap] started\n", encoding="utf-8")
    assert exercise._core_failure(log) is None
