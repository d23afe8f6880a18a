"""Shared fixtures of the library's tests (no Home Assistant needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parent / "vectors" / "balancer_capture.json"


@pytest.fixture(scope="session")
def capture() -> dict[str, Any]:
    """The real frames captured from a 16S balancer (tests/vectors)."""
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data
