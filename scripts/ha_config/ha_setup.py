"""Prepare a Home Assistant config folder for this integration, and onboard it through the API.

Used by `scripts/run` (inside the project's environment) and by the browser tests (tests/e2e):

    python scripts/ha_config/ha_setup.py prepare CONFIG_DIR --port 8123
    python scripts/ha_config/ha_setup.py onboard http://127.0.0.1:8123 --username daly --password …
    python scripts/ha_config/ha_setup.py add-module http://127.0.0.1:8123 socket://127.0.0.1:8899 --username …
    python scripts/ha_config/ha_setup.py pack-age CONFIG_DIR 14
    python scripts/ha_config/ha_setup.py seed-insights CONFIG_DIR socket://127.0.0.1:8899 14.6

`prepare` copies configuration.yaml (only when the folder has none), links the integration into
custom_components/ (a symlink, so edits in the repository show after a restart) and writes the
HTTP settings to .storage/http: Home Assistant 2026.10 reads them from there, not from YAML.
`onboard` makes the calls the onboarding pages make (user, location, analytics, integrations);
it does nothing when onboarding is already done. `add-module` adds the module at a serial port or
URL through the config flow, as the "Add integration" dialog does.

A simulated pack that has lived days (`daly-balancer simulate --pack-days`) has a history Home
Assistant never saw: it files each poll under its own date. `pack-age` gives the age to start
the pack at so that its sun follows Home Assistant's clock, and `seed-insights` (run while Home
Assistant is stopped) writes that pack's days into the insights store of the module at the URL.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
import json
import os
from pathlib import Path
import shutil
import sys
import time
from typing import Any
import urllib.error
import urllib.parse
import urllib.request
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TEMPLATE = HERE / "configuration.yaml"
DOMAIN = "daly_active_balance"
COMPONENT = REPO / "custom_components" / DOMAIN
LOOPBACK = "127.0.0.1"


def write_http_settings(config_dir: Path, port: int, host: str = LOOPBACK) -> dict[str, Any]:
    """Make ``host:port`` the confirmed HTTP settings; return what was written.

    Other settings already stored (SSL, proxies, …) are kept. A pending (unconfirmed) change is
    dropped, and YAML is marked as migrated, so Home Assistant neither starts a five-minute trial
    nor falls back to its defaults. The format comes from Home Assistant's own module.
    """
    from homeassistant.components.http import config as http_config  # noqa: PLC0415 - needs the venv

    path = config_dir / ".storage" / http_config.STORAGE_KEY
    stable: dict[str, Any] = {}
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8")).get("data", {})
        stable = dict(stored.get(http_config.KEY_STABLE) or {})
    for meta in ("created_at", "error", "error_message"):
        stable.pop(meta, None)
    stable.update(server_host=[host], server_port=port)
    validated = dict(http_config.HTTP_STORAGE_SCHEMA(stable))
    validated.update(created_at=datetime.now(UTC).isoformat(), error=None, error_message=None)
    content = {
        "version": http_config.STORAGE_VERSION,
        "minor_version": http_config.STORAGE_MINOR_VERSION,
        "key": http_config.STORAGE_KEY,
        "data": {
            http_config.KEY_STABLE: validated,
            http_config.KEY_PENDING: None,
            http_config.KEY_YAML_MIGRATION_DONE: True,
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return validated


def prepare(config_dir: Path, port: int) -> None:
    """Make ``config_dir`` ready for Home Assistant to serve this integration on 127.0.0.1:``port``."""
    config_dir.mkdir(parents=True, exist_ok=True)
    configuration = config_dir / "configuration.yaml"
    if not configuration.exists():
        shutil.copyfile(TEMPLATE, configuration)
    elif configuration.read_bytes() != TEMPLATE.read_bytes():
        print(f"keeping your {configuration} (it differs from {TEMPLATE})", file=sys.stderr)
    link = config_dir / "custom_components" / COMPONENT.name
    link.parent.mkdir(exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.resolve() != COMPONENT:
            raise SystemExit(f"{link} exists and is not a link to {COMPONENT}: move it away")
    else:
        link.symlink_to(os.path.relpath(COMPONENT, link.parent))
    write_http_settings(config_dir, port)


def _call(
    base: str, path: str, body: dict[str, str] | None = None, token: str | None = None, form: bool = False
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def onboard(base: str, username: str, password: str, name: str = "DALY tester", language: str = "en") -> str | None:
    """Finish onboarding with a first (owner) user; its access token, or None when it was already done."""
    try:
        steps = _call(base, "/api/onboarding")
    except urllib.error.HTTPError as err:
        if err.code == 404:  # the onboarding views are gone once onboarding is done
            return None
        raise
    if {step["step"]: step["done"] for step in steps}.get("user"):
        return None
    client_id = f"{base}/"
    user = {"client_id": client_id, "name": name, "username": username, "password": password, "language": language}
    code = _call(base, "/api/onboarding/users", user)["auth_code"]
    grant = {"grant_type": "authorization_code", "code": code, "client_id": client_id}
    token = _call(base, "/auth/token", grant, form=True)["access_token"]
    _call(base, "/api/onboarding/core_config", {}, token)
    _call(base, "/api/onboarding/analytics", {}, token)
    _call(
        base, "/api/onboarding/integration", {"client_id": client_id, "redirect_uri": f"{base}/?auth_callback=1"}, token
    )
    return str(token)


def login(base: str, username: str, password: str) -> str:
    """An access token for an existing user (the calls the login page makes)."""
    client_id = f"{base}/"
    flow = _call(
        base,
        "/auth/login_flow",
        {"client_id": client_id, "handler": ["homeassistant", None], "redirect_uri": f"{base}/?auth_callback=1"},
    )
    result = _call(
        base,
        f"/auth/login_flow/{flow['flow_id']}",
        {"client_id": client_id, "username": username, "password": password},
    )
    if result.get("type") != "create_entry":
        raise SystemExit(f"could not log in as {username!r}: {result.get('errors') or result.get('reason')}")
    grant = {"grant_type": "authorization_code", "code": result["result"], "client_id": client_id}
    return str(_call(base, "/auth/token", grant, form=True)["access_token"])


def add_module(base: str, token: str, port: str) -> bool:
    """Add the module at ``port`` (a serial port or URL) as the config flow's serial step does.

    True when it was added now, False when Home Assistant has it already; SystemExit with the
    flow's error otherwise.
    """
    flow = _call(base, "/api/config/config_entries/flow", {"handler": DOMAIN}, token)
    path = f"/api/config/config_entries/flow/{flow['flow_id']}"
    step = _call(base, path, {"next_step_id": "serial"}, token)
    result = _call(base, path, {"port": port}, token)
    if result["type"] == "create_entry":
        return True
    if result["type"] == "abort" and result["reason"] in {"already_configured", "module_already_configured"}:
        return False
    raise SystemExit(f"adding {port} failed at step {step.get('step_id')}: {result.get('errors') or result}")


def silent_modules(base: str, token: str) -> list[str]:
    """The titles of this integration's entries that Home Assistant cannot set up (not answering)."""
    entries = _call(base, f"/api/config/config_entries/entry?domain={DOMAIN}", token=token)
    return [entry["title"] for entry in entries if entry["state"] in {"setup_retry", "setup_error"}]


def restart(base: str, token: str, wait: float = 600) -> None:
    """Ask Home Assistant to restart (it exits with code 100; ``scripts/run`` starts it again).

    Home Assistant ignores a stop until it has started: this waits (up to ``wait`` s) for that.
    """
    deadline = time.monotonic() + wait
    while _call(base, "/api/config", token=token)["state"] != "RUNNING":
        if time.monotonic() > deadline:
            raise SystemExit(f"Home Assistant did not finish starting within {wait:.0f} s")
        time.sleep(1)
    try:
        _call(base, "/api/services/homeassistant/restart", {}, token)
    except urllib.error.HTTPError:
        raise
    except urllib.error.URLError, ConnectionError, TimeoutError:
        pass  # it may stop before it answers


def time_zone(config_dir: Path) -> ZoneInfo:
    """Home Assistant's time zone (UTC, its default, before it has stored one)."""
    path = config_dir / ".storage" / "core.config"
    if path.exists():
        return ZoneInfo(json.loads(path.read_text(encoding="utf-8"))["data"]["time_zone"])
    return ZoneInfo("UTC")


def pack_age(config_dir: Path, days: int) -> float:
    """``days`` and the part of today gone by in Home Assistant's time zone, in days.

    A simulated pack (whose day starts at its midnight) started at this age sees its sun rise
    and set on Home Assistant's clock, and its last day is Home Assistant's today.
    """
    now = datetime.now(time_zone(config_dir))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return days + (now - midnight) / timedelta(days=1)


def seed_insights(config_dir: Path, port: str, age: float) -> list[str]:
    """Write the days of a weak-cell pack aged ``age`` into the insights store of the module at ``port``.

    Run while Home Assistant is stopped (it would write over them). The history ends today in
    Home Assistant's time zone and replaces what the store held. Returns the entries seeded:
    those of this integration whose port is ``port`` (none before the module was added).
    """
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from custom_components.daly_active_balance.insights_store import (  # noqa: PLC0415 - needs the venv
        STORE_MINOR_VERSION,
        STORE_VERSION,
        store_key,
    )
    from reliability.pack_days import history  # noqa: PLC0415 - needs the repository on the path

    storage = config_dir / ".storage"
    entries_path = storage / "core.config_entries"
    if not entries_path.exists():
        return []
    entries = json.loads(entries_path.read_text(encoding="utf-8"))["data"]["entries"]
    seeded = [e["entry_id"] for e in entries if e["domain"] == DOMAIN and e["data"].get("port") == port]
    if not seeded:
        return []
    data = history(age, datetime.now(time_zone(config_dir)).date())
    for entry_id in seeded:
        key = store_key(entry_id)
        content = {"version": STORE_VERSION, "minor_version": STORE_MINOR_VERSION, "key": key, "data": data}
        (storage / key).write_text(json.dumps(content), encoding="utf-8")
    return seeded


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="make a config folder ready")
    prep.add_argument("config_dir", type=Path)
    prep.add_argument("--port", type=int, required=True)
    onb = sub.add_parser("onboard", help="create the first user through the onboarding API")
    onb.add_argument("base_url")
    onb.add_argument("--username", required=True)
    onb.add_argument("--password", required=True)
    add = sub.add_parser("add-module", help="add the module at a port or URL (prints added or present)")
    add.add_argument("base_url")
    add.add_argument("port")
    add.add_argument("--username", required=True)
    add.add_argument("--password", required=True)
    add.add_argument("--restart-if-added", action="store_true", help="then restart Home Assistant")
    age = sub.add_parser("pack-age", help="print the age (days) to start a simulated pack at")
    age.add_argument("config_dir", type=Path)
    age.add_argument("days", type=int)
    seed = sub.add_parser("seed-insights", help="give the module at a port the history of a simulated pack")
    seed.add_argument("config_dir", type=Path)
    seed.add_argument("port")
    seed.add_argument("age", type=float, help="the pack's age in days (as `pack-age` printed it)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.config_dir.resolve(), args.port)
        return 0
    if args.command == "add-module":
        base = args.base_url.rstrip("/")
        token = login(base, args.username, args.password)
        added = add_module(base, token, args.port)
        for title in silent_modules(base, token):
            print(
                f"{title} does not answer (an earlier run's simulator on another port?): remove it under "
                "Settings → Devices & services if you no longer need it",
                file=sys.stderr,
            )
        if added and args.restart_if_added:
            restart(base, token)
        print("added" if added else "present")
        return 0
    if args.command == "pack-age":
        print(f"{pack_age(args.config_dir, args.days):.6f}")
        return 0
    if args.command == "seed-insights":
        print(" ".join(seed_insights(args.config_dir.resolve(), args.port, args.age)) or "none")
        return 0
    print("onboarded" if onboard(args.base_url.rstrip("/"), args.username, args.password) else "onboarded-before")
    return 0


if __name__ == "__main__":
    sys.exit(main())
