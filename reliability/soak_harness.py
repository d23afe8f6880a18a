"""The fault-injection soak, run inside Home Assistant's test harness by ``reliability/soak.py``.

This is a pytest module on purpose (it is not under ``tests/``, so the suite does not collect
it): the ``hass`` fixture of pytest-homeassistant-custom-component builds Home Assistant exactly
as the suite does, and its teardown fails on lingering tasks or timers.

Three links, each with its own simulated module and config entry of the real integration (a TCP
bridge, a pty paced at 9600 baud, Bluetooth through Home Assistant's bluetooth integration),
are soaked under faults, ``DALY_SOAK_CONCURRENT`` (2) at once; then Home Assistant is stopped in
the middle of a verified write on each wired link and started again (see
``reliability/soak_lanes.py``). Descriptors and tasks are counted before the first set-up and
after everything is unloaded. The result goes to the JSON file named by ``DALY_SOAK_RESULT``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import time
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest

from aiodalybalancer.client import DalyClient
from aiodalybalancer.tools.simulator import SimulatedBalancer, serve_tcp
from aiodalybalancer.transport import SerialTransport
import custom_components.daly_active_balance  # noqa: F401 - lets HA's loader find the integration
from reliability.soak_lanes import LINKS, SoakSettings, restart_mid_write, soak_links
from tests.leaks import live_tasks, open_fds, until


def settings_from_environment() -> SoakSettings:
    """The soak's settings (``scripts/soak`` turns its options into these variables)."""
    default = SoakSettings()
    return SoakSettings(
        polls=int(os.environ.get("DALY_SOAK_POLLS", default.polls)),
        rate=float(os.environ.get("DALY_SOAK_FAULT_RATE", default.rate)),
        timeout=float(os.environ.get("DALY_SOAK_TIMEOUT", default.timeout)),
        seed=int(os.environ.get("DALY_SOAK_SEED", default.seed)),
        concurrent=int(os.environ.get("DALY_SOAK_CONCURRENT", default.concurrent)),
        progress_every=int(os.environ.get("DALY_SOAK_PROGRESS", "100")),
        links=tuple(os.environ.get("DALY_SOAK_LINKS", ",".join(default.links)).split(",")),
    )


async def soak(
    hass: HomeAssistant, settings: SoakSettings, *, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Every link soaked, the restart, and the leak count; the numbers as one dictionary."""
    started = time.monotonic()
    assert await async_setup_component(hass, "usb", {})  # an after-dependency with its own watcher
    await hass.async_block_till_done(wait_background_tasks=True)
    warm = SimulatedBalancer()
    server = await serve_tcp(warm)
    client = DalyClient(SerialTransport(server.url))  # the loop creates its executor on first use
    await client.poll()
    await client.close()
    await until(lambda: server.connections == 0)
    await server.close()
    fds_before, tasks_before = open_fds(), live_tasks()

    lanes, concurrent = await soak_links(hass, settings, folder=folder, monkeypatch=monkeypatch)
    restart = await restart_mid_write(hass, lanes)
    for lane in lanes.values():
        for served in lane.servers:
            await served.close()
    await until(lambda: not (live_tasks() - tasks_before))
    leaked_tasks = live_tasks() - tasks_before
    leaked_fds = {fd: target for fd, target in open_fds().items() if fds_before.get(fd) != target}
    return {
        "links": {name: lane.result() for name, lane in lanes.items()},
        "concurrent_modules": concurrent,
        "leaked_tasks": len(leaked_tasks),
        "leaked_fds": len(leaked_fds),
        "restart": restart,
        "leaked_task_names": sorted(str(task.get_coro()) for task in leaked_tasks),
        "leaked_fd_targets": sorted(leaked_fds.values()),
        "settings": {"polls_per_link": settings.polls, "fault_rate_per_request": settings.rate}
        | {"client_timeout_s": settings.timeout, "seed": settings.seed},
        "soak_seconds": round(time.monotonic() - started, 1),
    }


@pytest.fixture(autouse=True)
def _custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load this custom integration."""


async def test_soak(
    hass: HomeAssistant, socket_enabled: None, enable_bluetooth: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The soak; writes its numbers to ``DALY_SOAK_RESULT``."""
    await hass.async_block_till_done(wait_background_tasks=True)  # bluetooth settled
    results = await soak(hass, settings_from_environment(), folder=tmp_path, monkeypatch=monkeypatch)
    assert set(results["links"]) <= set(LINKS)
    Path(os.environ.get("DALY_SOAK_RESULT", "soak-result.json")).write_text(json.dumps(results))  # noqa: ASYNC240 - once, at the end
