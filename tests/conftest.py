"""Shared fixtures.

Importing the integration here, at collection time, is what lets Home Assistant's loader find
the custom component in the test harness.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import custom_components.daly_active_balance  # noqa: F401
from tests.skip_gate import pytest_configure  # noqa: F401  (the CI skip gate: hooks are found by name)

VECTORS = Path(__file__).resolve().parent / "fixtures" / "vectors" / "balancer_capture.json"


@pytest.fixture(scope="session")
def capture() -> dict[str, Any]:
    """The real frames captured from a 16S balancer (tests/fixtures/vectors)."""
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data
