"""One Home Assistant release, for real: the part of ``scripts/compat`` that runs inside its venv.

Starts that Home Assistant (no --skip-pip: it checks every requirement itself) with this
integration and a simulated 16S module on a TCP bridge, then does what a user does, through the
same REST and websocket calls the web UI makes: onboarding, adding the integration over the serial
bridge URL, reading states (every cell, pack voltage, each equal to what the module reports),
changing a setting (the module must hold the new value and Home Assistant must show it), and
unloading the entry (the bridge connection must close). Then Home Assistant's log must hold no
error or warning about this integration. Prints one JSON line:
``{"ha_version": ..., "result": "ok" | reason, "details": {...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
import contextlib
import importlib.util
import json
import os
from pathlib import Path
import re
import signal
import socket
import subprocess
import sys
from types import ModuleType
from typing import Any

import aiohttp
from homeassistant.const import __version__ as HA_VERSION

from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig, serve_tcp
from custom_components.daly_active_balance.const import DOMAIN

REPO = Path(__file__).resolve().parents[2]
CELLS = 16
START_TIMEOUT = 600.0
STEP_TIMEOUT = 60.0
USERNAME, PASSWORD = "compat", "compat-check-1"
#: The one warning Home Assistant logs for every custom integration; it is about being custom.
CUSTOM_NOTICE = re.compile(r"We found a custom integration daly_active_balance which has not been tested")
LOG_LINE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) \(([^)]*)\) \[([^\]]+)\] (.*)$")


class Failed(Exception):
    """A step that did not do what a user would expect."""


def _load_ha_setup() -> ModuleType:
    spec = importlib.util.spec_from_file_location("daly_ha_setup", REPO / "scripts" / "ha_config" / "ha_setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until(what: str, check: Callable[[], Awaitable[Any]], limit: float = STEP_TIMEOUT) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise Failed(f"{what} (after {limit:.0f} s; last: {str(last)[:200]})")


class HomeAssistantApi:
    """REST and websocket calls, as the web UI makes them."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session, self.base = session, base
        self.headers = {"Authorization": f"Bearer {token}"}
        self.token = token
        self._id = 0

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.session.request(method, self.base + path, json=body, headers=self.headers) as response:
            text = await response.text()
            if response.status >= 400:
                raise Failed(f"{method} {path} answered {response.status}: {text[:200]}")
            return json.loads(text) if text else None

    async def ws(self, message: dict[str, Any]) -> Any:
        async with self.session.ws_connect(self.base.replace("http", "ws", 1) + "/api/websocket") as socket_:
            await socket_.receive_json()
            await socket_.send_json({"type": "auth", "access_token": self.token})
            if (await socket_.receive_json()).get("type") != "auth_ok":
                raise Failed("the websocket API refused the token")
            self._id += 1
            await socket_.send_json({"id": self._id, **message})
            reply = await socket_.receive_json()
            if not reply.get("success"):
                raise Failed(f"websocket {message['type']} failed: {reply.get('error')}")
            return reply.get("result")

    async def state(self, entity_id: str) -> str | None:
        async with self.session.get(f"{self.base}/api/states/{entity_id}", headers=self.headers) as response:
            return str((await response.json())["state"]) if response.status == 200 else None


def _as_float(state: str | None) -> float | None:
    try:
        return float(state) if state is not None else None
    except ValueError:
        return None


async def _add_entry(api: HomeAssistantApi, url: str) -> str:
    """The config flow, step by step: menu → serial → the bridge URL."""
    flow = await api.call(
        "POST", "/api/config/config_entries/flow", {"handler": DOMAIN, "show_advanced_options": False}
    )
    if flow.get("type") != "menu" or "serial" not in flow.get("menu_options", []):
        raise Failed(f"the config flow did not offer the serial path: {flow}")
    flow = await api.call("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"next_step_id": "serial"})
    if flow.get("type") != "form" or flow.get("step_id") != "serial":
        raise Failed(f"the serial step did not show its form: {flow}")
    flow = await api.call("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"port": url})
    if flow.get("type") != "create_entry":
        raise Failed(f"the config flow did not create the entry: {flow.get('errors') or flow}")
    return str(flow["result"]["entry_id"])


async def _entities(api: HomeAssistantApi, entry_id: str) -> dict[str, str]:
    """Description key (the unique_id's suffix) → entity_id, for this entry's entities."""
    entries = await api.ws({"type": "config/entity_registry/list"})
    ours = [e for e in entries if e.get("platform") == DOMAIN and e.get("config_entry_id") == entry_id]
    # unique_id is "<entry unique_id>_<key>": the pack voltage's tells the prefix.
    anchor = next((e["unique_id"] for e in ours if e["unique_id"].endswith("_pack_voltage")), None)
    if anchor is None:
        return {}
    prefix = anchor.removesuffix("pack_voltage")
    return {e["unique_id"].removeprefix(prefix): e["entity_id"] for e in ours if e["unique_id"].startswith(prefix)}


async def _exercise(api: HomeAssistantApi, sim: SimulatedBalancer, server: Any) -> dict[str, Any]:
    entry_id = await _add_entry(api, server.url)
    entities = await _until("this entry's entities appear", lambda: _entities(api, entry_id))
    cells = [entities.get(f"cell_voltage_{n}") for n in range(1, CELLS + 1)]
    if None in cells or "pack_voltage" not in entities:
        raise Failed(f"missing entities: cells {cells}, keys {sorted(entities)[:40]}")

    async def states_match() -> bool:
        values = [_as_float(await api.state(eid)) for eid in cells]  # type: ignore[arg-type]
        expected = sim.cell_voltages()
        return all(v is not None and abs(v - e) < 0.0015 for v, e in zip(values, expected, strict=True)) and (
            _as_float(await api.state(entities["pack_voltage"])) is not None
        )

    await _until("every cell and the pack voltage show the module's values", states_match)

    number = entities.get("balance_start_voltage")
    if number is None:
        raise Failed("no balance turn-on voltage entity")
    before = float(sim.value("balance_start_voltage"))
    target = round(before + 0.05, 3)
    await api.call("POST", "/api/services/number/set_value", {"entity_id": number, "value": target})

    async def written() -> bool:
        return abs(float(sim.value("balance_start_voltage")) - target) < 1e-6 and (
            _as_float(await api.state(number)) == target
        )

    await _until(f"the module holds {target} V and Home Assistant shows it", written)

    pack_voltage = _as_float(await api.state(entities["pack_voltage"]))
    await api.ws({"type": "config_entries/disable", "entry_id": entry_id, "disabled_by": "user"})

    async def unloaded() -> bool:
        entries = await api.call("GET", "/api/config/config_entries/entry")
        state = next((e["state"] for e in entries if e["entry_id"] == entry_id), None)
        return state == "not_loaded" and server.connections == 0

    await _until("the entry unloads and the bridge connection closes", unloaded)
    return {
        "entities": len(entities),
        "cells_equal_to_module": len(cells),
        "pack_voltage": pack_voltage,
        "balance_start_voltage": [before, target],
        "unloaded": True,
    }


def _integration_log_problems(log: Path) -> list[str]:
    """Warnings and errors from this integration or about it (the custom-integration notice aside)."""
    problems = []
    if not log.exists():
        return ["Home Assistant wrote no log"]
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if match is None:
            continue
        _level, _thread, logger, message = match.groups()
        if (DOMAIN in logger or DOMAIN in message) and not CUSTOM_NOTICE.search(message):
            problems.append(line[:300])
    return problems


def _core_failure(log: Path) -> str | None:
    """The first error of a Home Assistant whose core failed to start (it then serves nothing)."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    if "core failed to initialize" not in text:
        return None
    return next((line[:300] for line in text.splitlines() if " ERROR " in line), "core failed to initialize")


async def _user_steps(
    process: asyncio.subprocess.Process,
    base: str,
    *,
    log: Path,
    ha_setup: ModuleType,
    sim: SimulatedBalancer,
    server: Any,
) -> dict[str, Any]:
    """Wait for the web UI, onboard, then the user's steps; what they saw."""
    async with aiohttp.ClientSession() as session:

        async def up() -> bool:
            if process.returncode is not None:
                raise Failed(f"Home Assistant exited with {process.returncode} while starting")
            if failed := _core_failure(log):
                raise Failed(f"Home Assistant did not start: {failed}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/manifest.json") as response:
                    return response.status == 200
            return False

        await _until("Home Assistant serves its web UI", up, START_TIMEOUT)
        loop = asyncio.get_running_loop()
        token = await loop.run_in_executor(None, ha_setup.onboard, base, USERNAME, PASSWORD)
        if not token:
            raise Failed("onboarding gave no access token")
        return await _exercise(HomeAssistantApi(session, base, token), sim, server)


async def run(workdir: Path, skip_pip_packages: str = "") -> dict[str, Any]:
    """Home Assistant, the simulator and the user's steps; the outcome as a dict."""
    ha_setup = _load_ha_setup()
    port = _free_port()
    config = workdir / "config"
    ha_setup.prepare(config, port)
    sim = SimulatedBalancer(SimulatorConfig(cells=CELLS, seed=7))
    server = await serve_tcp(sim)
    output = workdir / "home-assistant.out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "homeassistant", "--config", str(config),
            *(["--skip-pip-packages", skip_pip_packages] if skip_pip_packages else []),
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=workdir,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    details: dict[str, Any] = {}
    try:
        details = await _user_steps(
            process, base, log=config / "home-assistant.log", ha_setup=ha_setup, sim=sim, server=server
        )
        problems = _integration_log_problems(config / "home-assistant.log")
        result = (
            f"{len(problems)} warning/error line(s) about the integration, first: {problems[0]}" if problems else "ok"
        )
    except Failed as err:
        result = str(err)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await server.close()
    if result != "ok":
        tail = (config / "home-assistant.log") if (config / "home-assistant.log").exists() else output
        print("\n".join(tail.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
    return {"ha_version": HA_VERSION, "result": result, "details": details}


def main() -> None:
    """Command-line entry point (the driver calls it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--skip-pip-packages", default="", help="for Home Assistant: packages the index lacks")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.workdir, args.skip_pip_packages))))


if __name__ == "__main__":
    main()
