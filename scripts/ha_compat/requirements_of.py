"""What a Home Assistant release installs for this integration: print its constraints file and requirements.

Runs inside the release's venv. The integrations that release sets up are the ones its bootstrap
always loads, the ones our test configuration names, and this integration; each brings its
``dependencies`` and ``after_dependencies`` (Home Assistant installs the requirements of both,
see homeassistant/requirements.py) and the discovery integrations its manifest matches. Prints
``{"constraints": PATH, "requirements": [...]}``.
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import sys

import homeassistant
from homeassistant import bootstrap

COMPONENTS = Path(homeassistant.__file__).parent / "components"
#: Manifest keys that make Home Assistant also process a discovery integration's requirements.
DISCOVERY = {"bluetooth": "bluetooth", "dhcp": "dhcp", "ssdp": "ssdp", "usb": "usb", "zeroconf": "zeroconf"}


def _always_loaded() -> set[str]:
    """What bootstrap sets up on every normal start, whatever the configuration says."""
    return set(bootstrap.CORE_INTEGRATIONS) | set(bootstrap.DEFAULT_INTEGRATIONS)


def _manifest(domain: str, own: dict[str, dict]) -> dict | None:
    if domain in own:
        return own[domain]
    path = COMPONENTS / domain / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def main() -> None:
    """Print the constraints file and the requirements of everything loaded."""
    manifest_path, configuration = Path(sys.argv[1]), Path(sys.argv[2])
    ours = json.loads(manifest_path.read_text(encoding="utf-8"))
    own = {ours["domain"]: ours}
    configured = set(re.findall(r"^([a-z_]+):", configuration.read_text(encoding="utf-8"), re.MULTILINE))
    todo = _always_loaded() | configured | {ours["domain"]}
    seen: set[str] = set()
    wanted: dict[str, None] = {}
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = _manifest(domain, own)
        if manifest is None:
            continue
        wanted.update(dict.fromkeys(manifest.get("requirements", [])))
        todo |= set(manifest.get("dependencies", [])) | set(manifest.get("after_dependencies", []))
        todo |= {DISCOVERY[key] for key in manifest if key in DISCOVERY}
    constraints = Path(homeassistant.__file__).parent / "package_constraints.txt"
    print(json.dumps({"constraints": str(constraints), "requirements": list(wanted)}))


if __name__ == "__main__":
    main()
