"""Unique ids are promises to users: their history, dashboards and automations hang on them.

Each entity's unique id is ``<entry unique id>_<description key>``. The keys are written here
as literals, apart from the register table and the translations: renaming a register or a
translation key must leave this list alone, and a change to it needs a config-entry migration
that carries users' entities over.
"""

from __future__ import annotations

from custom_components.daly_active_balance.binary_sensor import BINARY_SENSORS, NOT_KEEPING_UP, PACK_CHECK
from custom_components.daly_active_balance.number import NUMBERS
from custom_components.daly_active_balance.select import SELECTS
from custom_components.daly_active_balance.sensor import INSIGHT_SENSORS, SENSORS
from custom_components.daly_active_balance.switch import KEEP_CONNECTED, SWITCHES

CELLS = range(1, 25)
TEMPERATURES = range(1, 7)

UNIQUE_ID_SUFFIXES = {
    "sensor": {
        "pack_voltage",
        *(f"cell_voltage_{n}" for n in CELLS),
        "min_cell_voltage",
        "max_cell_voltage",
        "average_cell_voltage",
        "min_voltage_cell",
        "max_voltage_cell",
        "cell_delta",
        *(f"temperature_{n}" for n in TEMPERATURES),
        "balance_current",
        "mos_temperature",
        "board_temperature",
        "cell_count",
        "temperature_sensor_count",
        "register_00ce",
        "register_00d0",
        # The pack insights (the card and the blueprint use these keys too).
        "top_difference_today",
        "top_difference_yesterday",
        "difference_trend",
        "balancing_time_today",
        "weakest_cell",
        "highest_cell_at_top",
    },
    "binary_sensor": {
        "balancing",
        "balancing_expected",
        *(f"cell_balancing_{n}" for n in CELLS),
        "warning",
        "fault",
        "pack_check",
        "not_keeping_up",
    },
    "number": {"balance_start_voltage", "balance_start_delta", "sleep_time", "string_count"},
    "select": {"battery_type"},
    "switch": {"balancer_enabled", "never_sleep", "keep_connected"},
}


def test_unique_id_suffixes_are_pinned() -> None:
    found = {
        "sensor": [*(d.key for d in SENSORS), *(d.key for d in INSIGHT_SENSORS)],
        "binary_sensor": [*(d.key for d in BINARY_SENSORS), PACK_CHECK.key, NOT_KEEPING_UP.key],
        "number": [d.key for d in NUMBERS],
        "select": [d.key for d in SELECTS],
        "switch": [*(d.key for d in SWITCHES), KEEP_CONNECTED.key],
    }
    for platform, keys in found.items():
        assert len(keys) == len(set(keys)), f"{platform}: a key is used twice"
        assert set(keys) == UNIQUE_ID_SUFFIXES[platform], platform


def test_writes_name_their_register_not_a_key() -> None:
    """Every setting entity carries the setting it writes; its key is only the unique id's suffix."""
    for description in (*NUMBERS, *SELECTS, *SWITCHES):
        assert description.setting.register.writable, description.key
