"""Constants of the DALY active balancer integration."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "daly_active_balance"
