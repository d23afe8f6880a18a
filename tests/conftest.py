"""Shared fixtures.

Importing the integration here, at collection time, is what lets Home Assistant's loader find
the custom component in the test harness.
"""

from __future__ import annotations

import custom_components.daly_active_balance  # noqa: F401
from tests.skip_gate import pytest_configure  # noqa: F401  (the CI skip gate: hooks are found by name)
