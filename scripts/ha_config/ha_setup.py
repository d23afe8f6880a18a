"""Prepare a Home Assistant config folder for this integration, and onboard it through the API.

Used by `scripts/run` (inside the project's environment) and by the browser tests (tests/e2e):

    python scripts/ha_config/ha_setup.py prepare CONFIG_DIR --port 8123
    python scripts/ha_config/ha_setup.py onboard http://127.0.0.1:8123 --username daly --password …

`prepare` copies configuration.yaml (only when the folder has none), links the integration into
custom_components/ (a symlink, so edits in the repository show after a restart) and writes the
HTTP settings to .storage/http: Home Assistant 2026.10 reads them from there, not from YAML.
`onboard` makes the calls the onboarding pages make (user, location, analytics, integrations);
it does nothing when onboarding is already done.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import shutil
import sys
from typing import Any
import urllib.error
import urllib.parse
import urllib.request

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TEMPLATE = HERE / "configuration.yaml"
COMPONENT = REPO / "custom_components" / "daly_active_balance"
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
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.config_dir.resolve(), args.port)
        return 0
    print("onboarded" if onboard(args.base_url.rstrip("/"), args.username, args.password) else "onboarded-before")
    return 0


if __name__ == "__main__":
    sys.exit(main())
