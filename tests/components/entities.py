"""Which entities show the module, for the tests and the soak alike."""

from __future__ import annotations

from custom_components.daly_active_balance.binary_sensor import PACK_CHECK
from custom_components.daly_active_balance.button import PHONE_APP_BUTTONS
from custom_components.daly_active_balance.const import CONF_KEEP_CONNECTED
from custom_components.daly_active_balance.sensor import LINK_SENSORS

#: Keys of the entities of Home Assistant's own state (an option, the link's counters, the pack
#: check that shows the module stopped answering, the phone app's buttons): they stay available
#: while the module is silent.
ALWAYS_AVAILABLE = frozenset(
    {
        CONF_KEEP_CONNECTED,
        PACK_CHECK.key,
        *(description.key for description in LINK_SENSORS),
        *(description.key for description in PHONE_APP_BUTTONS),
    }
)
