"""scripts/ha_config/ha_setup.py's pack start, without Home Assistant running.

``pack-age`` puts a simulated pack's sun on Home Assistant's clock; ``seed-insights`` writes the
days that pack lived into the insights store of the module at a port, in the layout Home
Assistant's ``Store`` reads. tests/e2e/test_run_pack.py runs both against a real Home Assistant.
"""

from __future__ import annotations

from datetime import datetime, timedelta
import json
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from custom_components.daly_active_balance.const import DOMAIN
from custom_components.daly_active_balance.insights import Insights
from custom_components.daly_active_balance.insights_store import STORE_MINOR_VERSION, STORE_VERSION, store_key
from tests.scripts import load_script

URL = "socket://127.0.0.1:8899"
ZONE = "Pacific/Auckland"


@pytest.fixture(scope="module")
def ha_setup() -> ModuleType:
    return load_script("ha_config/ha_setup.py")


def _storage(config_dir: Path, name: str, data: dict[str, Any]) -> None:
    path = config_dir / ".storage" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "key": name, "data": data}), encoding="utf-8")


def _entry(entry_id: str, domain: str, port: str) -> dict[str, Any]:
    return {"entry_id": entry_id, "domain": domain, "data": {"connection": "serial", "port": port}}


def test_pack_age_is_the_days_and_the_part_of_today_in_home_assistants_zone(
    ha_setup: ModuleType, tmp_path: Path
) -> None:
    _storage(tmp_path, "core.config", {"time_zone": ZONE})
    age = ha_setup.pack_age(tmp_path, 14)
    now = datetime.now(ZoneInfo(ZONE))
    today = (now - now.replace(hour=0, minute=0, second=0, microsecond=0)) / timedelta(days=1)
    assert 14 <= age < 15
    assert age - 14 == pytest.approx(today, abs=1e-3)


def test_pack_age_before_home_assistant_stored_a_zone_is_in_utc(ha_setup: ModuleType, tmp_path: Path) -> None:
    now = datetime.now(ZoneInfo("UTC"))
    today = (now - now.replace(hour=0, minute=0, second=0, microsecond=0)) / timedelta(days=1)
    assert ha_setup.pack_age(tmp_path, 3) - 3 == pytest.approx(today, abs=1e-3)


def test_nothing_is_seeded_before_a_module_is_added(ha_setup: ModuleType, tmp_path: Path) -> None:
    assert ha_setup.seed_insights(tmp_path, URL, 14.5) == []
    _storage(tmp_path, "core.config_entries", {"entries": [_entry("other", "zha", URL)]})
    assert ha_setup.seed_insights(tmp_path, URL, 14.5) == []
    assert not list((tmp_path / ".storage").glob(f"{DOMAIN}*"))


def test_the_module_at_the_url_gets_the_packs_days(ha_setup: ModuleType, tmp_path: Path) -> None:
    _storage(tmp_path, "core.config", {"time_zone": ZONE})
    entries = [
        _entry("ours", DOMAIN, URL),
        _entry("elsewhere", DOMAIN, "socket://127.0.0.1:9000"),
        _entry("x", "zha", URL),
    ]
    _storage(tmp_path, "core.config_entries", {"entries": entries})
    old = tmp_path / ".storage" / store_key("ours")
    old.write_text(
        json.dumps({"version": 1, "minor_version": 1, "key": store_key("ours"), "data": {}}), encoding="utf-8"
    )

    assert ha_setup.seed_insights(tmp_path, URL, 14.5) == ["ours"]

    stored = json.loads(old.read_text(encoding="utf-8"))
    assert (stored["version"], stored["minor_version"], stored["key"]) == (
        STORE_VERSION,
        STORE_MINOR_VERSION,
        store_key("ours"),
    )
    insights = Insights.from_dict(stored["data"])
    today = datetime.now(ZoneInfo(ZONE)).date()
    assert [day.day for day in insights.days] == [today - timedelta(days=14 - n) for n in range(15)]
    answers = insights.answers()
    assert answers.weakest_cell == 5
    assert answers.trend is not None
    assert not (tmp_path / ".storage" / store_key("elsewhere")).exists()
    assert not (tmp_path / ".storage" / store_key("x")).exists()
