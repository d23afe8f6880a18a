"""Constants of the DALY active balancer integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "daly_active_balance"
LOGGER: Final = logging.getLogger(__package__)
MANUFACTURER: Final = "DALY"

#: Config entry data.
CONF_CONNECTION: Final = "connection"
CONNECTION_BLE: Final = "ble"
CONNECTION_SERIAL: Final = "serial"

#: Options.
CONF_UPDATE_INTERVAL: Final = "update_interval"
CONF_KEEP_CONNECTED: Final = "keep_connected"
CONF_SETTINGS_EVERY: Final = "settings_every"
#: When the pack insights call the balancer "not keeping up": the trend (mV/day) and the days.
CONF_NOT_KEEPING_UP_TREND: Final = "not_keeping_up_trend"
CONF_NOT_KEEPING_UP_DAYS: Final = "not_keeping_up_days"

DEFAULT_UPDATE_INTERVAL: Final = 10
#: A poll cycle is a fraction of a second on a 9600-baud wire (docs/performance.md) and BLE
#: adds connection events; the floor keeps the adapter (or proxy slot) free for other devices.
MIN_UPDATE_INTERVAL: Final = 2
MAX_UPDATE_INTERVAL: Final = 3600
DEFAULT_SETTINGS_EVERY: Final = 10
MAX_SETTINGS_EVERY: Final = 1000
DEFAULT_KEEP_CONNECTED: Final = True

#: Seconds the config flow's probe may take as a whole.
PROBE_TIMEOUT: Final = 30

#: The options' ranges for "not keeping up" (the defaults are the insights'). Below 0.5 mV/day
#: the module's 1 mV resolution and the day-to-day scatter of the top of charge raise it for
#: nothing; the trend needs at least two days to rise on, and two weeks already hide a fault.
MIN_NOT_KEEPING_UP_TREND: Final = 0.5
MAX_NOT_KEEPING_UP_TREND: Final = 50.0
MIN_NOT_KEEPING_UP_DAYS: Final = 2
MAX_NOT_KEEPING_UP_DAYS: Final = 14
