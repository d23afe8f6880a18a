"""What a Home Assistant release installs for this integration: print its constraints file and requirements.

Runs inside the release's venv. The integrations that release sets up are the ones its bootstrap
always loads, the ones our test configuration names, and this integration (plus what core's login
modules declare); each brings its
``dependencies`` and ``after_dependencies`` (Home Assistant installs the requirements of both,
see homeassistant/requirements.py) and the discovery integrations its manifest matches. Prints
``{"constraints": PATH, "domain": OURS, "by_domain": {DOMAIN: [requirement, ...]}}``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
import re
import sys

import homeassistant
from homeassistant import bootstrap
from homeassistant.requirements import DISCOVERY_INTEGRATIONS

COMPONENTS = Path(homeassistant.__file__).parent / "components"


def _always_loaded() -> set[str]:
    """What bootstrap sets up on every normal start, whatever the configuration says."""
    return set(bootstrap.CORE_INTEGRATIONS) | set(bootstrap.DEFAULT_INTEGRATIONS)


def _core_requirements() -> list[str]:
    """The login's modules (multi-factor and providers) declare REQUIREMENTS that core installs at start."""
    found: list[str] = []
    for package in ("mfa_modules", "providers"):
        for source in sorted((Path(homeassistant.__file__).parent / "auth" / package).glob("*.py")):
            for node in ast.parse(source.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "REQUIREMENTS" for t in node.targets
                ):
                    found += [str(item) for item in ast.literal_eval(node.value)]
    return found


def _manifest(domain: str, own: dict[str, dict]) -> dict | None:
    if domain in own:
        return own[domain]
    path = COMPONENTS / domain / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def main() -> None:
    """Print the constraints file, our own requirements and every loaded integration's, by domain."""
    manifest_path, configuration = Path(sys.argv[1]), Path(sys.argv[2])
    ours = json.loads(manifest_path.read_text(encoding="utf-8"))
    own = {ours["domain"]: ours}
    configured = set(re.findall(r"^([a-z_]+):", configuration.read_text(encoding="utf-8"), re.MULTILINE))
    todo = _always_loaded() | configured | {ours["domain"]}
    seen: set[str] = set()
    by_domain: dict[str, list[str]] = {"homeassistant.auth": _core_requirements()}
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = _manifest(domain, own)
        if manifest is None:
            continue
        if manifest.get("requirements"):
            by_domain[domain] = list(manifest["requirements"])
        todo |= set(manifest.get("dependencies", [])) | set(manifest.get("after_dependencies", []))
        # What homeassistant/requirements.py adds: discovery integrations the manifest matches.
        todo |= {check for check, keys in DISCOVERY_INTEGRATIONS.items() if any(key in manifest for key in keys)}
    constraints = Path(homeassistant.__file__).parent / "package_constraints.txt"
    print(json.dumps({"constraints": str(constraints), "domain": ours["domain"], "by_domain": by_domain}))


if __name__ == "__main__":
    main()
