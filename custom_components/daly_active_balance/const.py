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
