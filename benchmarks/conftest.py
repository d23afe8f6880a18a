"""Fixtures of the Home Assistant benchmark: simulated modules in a child process, on TCP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiodalybalancer.transport import BAUDRATE

from .common import HA_SPECS, MODULE_CELLS, SimProcess


@pytest.fixture(autouse=True)
def _auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load the custom integration."""


@pytest.fixture(scope="module")
def sims() -> Iterator[SimProcess]:
    """The simulated modules, served on 127.0.0.1 by a child process for the whole module."""
    with SimProcess(HA_SPECS) as process:
        yield process


@pytest.fixture(scope="module")
def bytewise_sim() -> Iterator[SimProcess]:
    """One paced 24-cell module whose replies arrive one byte at a time (CP210x/CH340-like)."""
    with SimProcess([f"tcp:{MODULE_CELLS}:{BAUDRATE}"], piece=1) as process:
        yield process
