"""``scripts/run --pack-days`` against a real Home Assistant, through the helpers it calls.

scripts/run onboards Home Assistant, adds the simulated module through the config flow, has Home
Assistant restart, and while it is stopped writes the days the pack lived into the module's
insights store (scripts/ha_config/ha_setup.py). This runs the same calls in the same order, with
the pack the simulator serves, and looks at what the user then sees: the trend and the weakest
cell at once, not after three days. No browser: the REST API is enough.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiodalybalancer.tools.pack import weak_cell_simulator
from aiodalybalancer.tools.simulator import SimulatorConfig, serve_tcp
from tests.scripts import load_script

from .conftest import FrozenClock, HomeAssistantProcess, free_port, restart

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

USERNAME = "daly"
PASSWORD = "daly-balancer"
#: How long the insight entities may take to appear after the restart (setup, first poll).
STATES_TIMEOUT = 120.0


async def _states(setup: Any, base: str, token: str, suffixes: tuple[str, ...], *, known: bool) -> dict[str, str]:
    """The states of the entities whose ids end in ``suffixes``, once each has one (a ``known`` one)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STATES_TIMEOUT
    while True:
        found: dict[str, str] = {}
        for state in await asyncio.to_thread(setup._call, base, "/api/states", None, token):
            for suffix in suffixes:
                if state["entity_id"].endswith(suffix) and not (known and state["state"] in {"unavailable", "unknown"}):
                    found[suffix] = state["state"]
        if len(found) == len(suffixes) or loop.time() > deadline:
            return found
        await asyncio.sleep(1)


async def _silent(setup: Any, base: str, token: str) -> list[str]:
    """``setup.silent_modules`` once it names one (Home Assistant retries the setup meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STATES_TIMEOUT
    while True:
        titles: list[str] = await asyncio.to_thread(setup.silent_modules, base, token)
        if titles or loop.time() > deadline:
            return titles
        await asyncio.sleep(1)


async def test_a_pack_with_a_weak_cell_shows_its_days_at_once(
    home_assistant: HomeAssistantProcess, socket_enabled: None
) -> None:
    setup = load_script("ha_config/ha_setup.py")
    base = home_assistant.url
    age = setup.pack_age(home_assistant.config_dir, 14)
    assert 14 <= age < 15
    sim = await asyncio.to_thread(weak_cell_simulator, age, SimulatorConfig(cells=16), clock=FrozenClock())
    server = await serve_tcp(sim)
    try:
        assert await asyncio.to_thread(setup.onboard, base, USERNAME, PASSWORD) is not None
        assert await asyncio.to_thread(setup.onboard, base, USERNAME, PASSWORD) is None  # done before
        with pytest.raises(SystemExit, match="could not log in as 'daly'"):
            await asyncio.to_thread(setup.login, base, USERNAME, "wrong")
        token = await asyncio.to_thread(setup.login, base, USERNAME, PASSWORD)

        # A port with nothing behind it is refused with the flow's error; nothing is added.
        silent = f"socket://127.0.0.1:{free_port()}"
        with pytest.raises(SystemExit, match="cannot_open"):
            await asyncio.to_thread(setup.add_module, base, token, silent)
        assert await asyncio.to_thread(setup.add_module, base, token, server.url) is True
        assert await asyncio.to_thread(setup.add_module, base, token, server.url) is False

        # Before the restart Home Assistant has seen the pack for a moment only.
        before = await _states(setup, base, token, ("_top_of_charge_difference_trend",), known=False)
        assert before == {"_top_of_charge_difference_trend": "unknown"}

        await asyncio.to_thread(setup.restart, base, token)
        assert await asyncio.wait_for(home_assistant.process.wait(), 120) == 100  # scripts/run starts it again
        seeded: list[str] = []
        await restart(
            home_assistant, lambda: seeded.extend(setup.seed_insights(home_assistant.config_dir, server.url, age))
        )
        assert len(seeded) == 1
        assert setup.seed_insights(home_assistant.config_dir, silent, age) == []

        suffixes = ("_weakest_cell", "_top_of_charge_difference_trend", "_top_of_charge_difference_yesterday")
        after = await _states(setup, base, token, suffixes, known=True)
        assert set(after) == set(suffixes), home_assistant.log_tail()
        assert after["_weakest_cell"] == "5"
        float(after["_top_of_charge_difference_trend"])
        assert int(after["_top_of_charge_difference_yesterday"]) > 0
        assert home_assistant.integration_errors() == []
        assert await asyncio.to_thread(setup.silent_modules, base, token) == []

        # The next run serves the simulator elsewhere: the module left behind is named.
        await server.close()
        await restart(home_assistant)
        silent = await _silent(setup, base, token)
        assert len(silent) == 1
        assert silent[0].endswith(f"({server.url.removeprefix('socket://')})")
    finally:
        await server.close()
