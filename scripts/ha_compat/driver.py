"""``scripts/compat``: this integration on the real Home Assistant, one release at a time.

For each version (default: the oldest supported one, from hacs.json, and the newest release on the
package index):

1. a venv of its own (cached under the cache folder; built in a temporary folder and renamed only
   when complete, so a failed build leaves nothing behind) with that Home Assistant;
2. the library (packages/aiodalybalancer, the manifest's one requirement) from this repository,
   then the requirements of this integration and of every integration that release loads with it,
   installed with pip **under that release's package_constraints.txt**, as Home Assistant itself
   would install them (a conflict is a failure; Home Assistant is never started with --skip-pip);
3. ``exercise.py`` inside that venv: Home Assistant with the integration and the simulator, the
   config flow through the REST API, states, a verified write, unload, the log.

Standard library only: it runs on the bare Python that creates the venvs. The last line is JSON:
``{"ha": {"2026.10.4": "ok", ...}, "seconds": ...}``; a version that failed has its reason.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HACS = REPO / "hacs.json"
MANIFEST = REPO / "custom_components" / "daly_active_balance" / "manifest.json"
LIBRARY = REPO / "packages" / "aiodalybalancer"
CONFIGURATION = REPO / "scripts" / "ha_config" / "configuration.yaml"
VERSION = re.compile(r"^\d{4}\.\d{1,2}\.\d+$")
PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")


#: Names a CI matrix can use instead of a number: resolved when the script runs.
ALIASES = ("oldest", "newest")


class CompatError(Exception):
    """A one-line reason a version could not be checked."""


def oldest_supported() -> str:
    """The oldest supported release: hacs.json's ``homeassistant``, the one place it is written."""
    return str(json.loads(HACS.read_text(encoding="utf-8"))["homeassistant"])


def _pip(python: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, *PIP, *args], capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )


def _last_error(output: str) -> str:
    """pip's own reason, in one line (for a conflict: what conflicts)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if "The conflict is caused by:" in lines:
        start = lines.index("The conflict is caused by:") + 1
        cause = [line for line in lines[start : start + 6] if "requested" in line or " depends on " in line]
        return "conflict: " + "; ".join(cause)
    for line in reversed(lines):
        if line.startswith("ERROR:"):
            return line.removeprefix("ERROR:").strip()
    return lines[-1] if lines else "no output"


def index_python(base: Path, python: str) -> str:
    """A venv with pip only, to ask the package index (the bare interpreter may have no pip)."""
    tool = base / ".index"
    if not (tool / "bin" / "pip").exists():
        base.mkdir(parents=True, exist_ok=True)
        subprocess.run([python, "-m", "venv", "--clear", str(tool)], check=True, capture_output=True)
    return _venv_python(tool)


def published_versions(python: str) -> list[str]:
    """Home Assistant's releases on the package index (no pre-releases), newest first."""
    result = _pip(python, "index", "versions", "homeassistant", timeout=300)
    if result.returncode != 0:
        # Home Assistant is always on the index: no match means pip could not read it.
        reason = _last_error(result.stdout + result.stderr)
        raise CompatError(f"cannot reach the package index (pip: {reason}); check the network or pip's index settings")
    for line in result.stdout.splitlines():
        if line.startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if VERSION.match(v.strip())]
    raise CompatError("the package index listed no Home Assistant release")


def _resolve(version: str, published: list[str]) -> str:
    """A version number for ``version``, which may be one of ALIASES."""
    if version == "oldest":
        return oldest_supported()
    if version == "newest":
        return published[0]
    return version


def _venv_python(path: Path) -> str:
    return str(path / "bin" / "python")


def _install_home_assistant(target: Path, version: str, python: str) -> None:
    subprocess.run([python, "-m", "venv", str(target)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    pip = _venv_python(target)
    result = _pip(pip, "install", "-q", "--upgrade", "pip")
    if result.returncode != 0:
        raise CompatError(f"cannot install pip: {_last_error(result.stdout + result.stderr)}")
    result = _pip(pip, "install", "-q", f"homeassistant=={version}")
    if result.returncode != 0:
        reason = _last_error(result.stdout + result.stderr)
        if "No matching distribution" in reason:
            raise CompatError(f"Home Assistant {version} is not published on the package index")
        raise CompatError(f"cannot install Home Assistant {version}: {reason}")


def build_venv(base: Path, version: str, python: str) -> Path:
    """The cached venv with Home Assistant ``version``; built whole or not at all."""
    target = base / version
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)  # what an interrupted build left
    base.mkdir(parents=True, exist_ok=True)
    try:
        _install_home_assistant(target, version, python)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        if not any(base.iterdir()):
            base.rmdir()
        raise
    (target / ".complete").write_text(version, encoding="utf-8")
    return target


def requirements(python: str) -> tuple[Path, str, dict[str, list[str]]]:
    """That release's constraints file, our domain, and what it installs for each integration it loads."""
    script = HERE / "requirements_of.py"
    result = subprocess.run(
        [python, str(script), str(MANIFEST), str(CONFIGURATION)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise CompatError(f"cannot list the requirements: {_last_error(result.stderr)}")
    data = json.loads(result.stdout)
    return Path(data["constraints"]), str(data["domain"]), dict(data["by_domain"])


def _unpublished(output: str) -> str | None:
    """The requirement pip found no distribution for, if that is why it failed."""
    match = re.search(r"No matching distribution found for (\S+)", output)
    return match.group(1) if match else None


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def install_library(python: str, constraints: Path) -> None:
    """The manifest's ``aiodalybalancer==…``, from this repository: it is not on the package index yet.

    Installed (its dependencies too) under the release's constraints like any requirement, so
    Home Assistant finds the manifest's pin satisfied and never asks the package index for it.
    Reinstalled every time: the cached venv must run this checkout's library.
    """
    result = _pip(python, "install", "-q", "--force-reinstall", "--no-deps", str(LIBRARY))
    if result.returncode == 0:
        result = _pip(python, "install", "-q", "-c", str(constraints), str(LIBRARY))
    if result.returncode != 0:
        raise CompatError(
            f"cannot install aiodalybalancer from {LIBRARY.relative_to(REPO)}: {_last_error(result.stdout + result.stderr)}"
        )


def install_requirements(python: str) -> list[str]:
    """pip install the requirements under the release's constraints, as Home Assistant does.

    Our own requirements must install: a conflict or a missing version is a failure. Another
    integration whose pinned requirement the package index here does not have (a mirror behind
    the release) cannot be installed by Home Assistant either; its requirements are left out and
    returned, for Home Assistant's ``--skip-pip-packages`` and for the report.
    """
    constraints, ours, by_domain = requirements(python)
    install_library(python, constraints)
    skipped: list[str] = []
    while True:
        wanted = [req for reqs in by_domain.values() for req in reqs]
        result = _pip(python, "install", "-q", "-c", str(constraints), *dict.fromkeys(wanted))
        if result.returncode == 0:
            return skipped
        output = result.stdout + result.stderr
        missing = _unpublished(output)
        culprits = [d for d, reqs in by_domain.items() if missing and _name(missing) in {_name(r) for r in reqs}]
        if not culprits or ours in culprits:
            raise CompatError(
                f"requirements do not install under this release's package_constraints.txt: {_last_error(output)}"
            )
        for domain in culprits:
            print(f"[compat] not on the package index: {missing} ({domain}): leaving {domain}'s requirements out",
                  file=sys.stderr)  # fmt: skip
            skipped += by_domain.pop(domain)


def exercise(python: str, version: str, workdir: Path, skipped: list[str]) -> str:
    """Run exercise.py in the release's venv; 'ok' or its one-line reason."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [
            python,
            str(HERE / "exercise.py"),
            "--workdir",
            str(workdir),
            "--skip-pip-packages",
            ",".join(sorted({_name(r) for r in skipped})),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        timeout=1200,
    )
    sys.stderr.write(result.stderr)
    lines = result.stdout.strip().splitlines()
    if not lines:
        return f"exercise printed nothing (exit {result.returncode})"
    outcome = json.loads(lines[-1])
    if details := outcome.get("details"):
        print(f"[compat] Home Assistant {version}: {json.dumps(details)}", file=sys.stderr)
    if outcome.get("ha_version") != version:
        return f"expected Home Assistant {version}, ran {outcome.get('ha_version')}"
    return str(outcome["result"])


def check(version: str, base: Path, python: str, keep: bool, skipped: list[str]) -> str:
    """Everything for one release; 'ok' or the reason it failed. ``skipped`` gets what was left out."""
    try:
        target = build_venv(base, version, python)
        venv_python = _venv_python(target)
        skipped += install_requirements(venv_python)
        with tempfile.TemporaryDirectory(prefix=f"daly-compat-{version}-") as tmp:
            outcome = exercise(venv_python, version, Path(tmp), skipped)
            if keep and outcome != "ok":
                kept = base / f"failed-{version}"
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(tmp, kept, symlinks=True)
                print(f"[compat] {version}: kept its config folder in {kept}", file=sys.stderr)
            return outcome
    except CompatError as err:
        return str(err)
    except subprocess.TimeoutExpired as err:
        return f"timed out after {err.timeout:.0f} s: {' '.join(map(str, err.cmd))[:120]}"


def fetch_constraints(version: str, pip_python: str, out: Path) -> Path:
    """Home Assistant ``version``'s package_constraints.txt, from its wheel, as ``out/VERSION.txt``."""
    with tempfile.TemporaryDirectory(prefix="daly-constraints-") as tmp:
        result = _pip(pip_python, "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", tmp,
                      f"homeassistant=={version}")  # fmt: skip
        if result.returncode != 0:
            raise CompatError(f"cannot download Home Assistant {version}: {_last_error(result.stdout + result.stderr)}")
        wheel = next(Path(tmp).glob("homeassistant-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read("homeassistant/package_constraints.txt")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{version}.txt"
    target.write_bytes(data)
    return target


def refresh_constraints(args: argparse.Namespace, versions: list[str]) -> int:
    """Vendor the supported releases' constraints files (tests/fixtures/constraints), drop the others."""
    pip_python = index_python(args.venvs, sys.executable)
    for version in versions:
        print(fetch_constraints(version, pip_python, args.refresh_constraints))
    for stale in args.refresh_constraints.glob("*.txt"):
        if stale.stem not in versions:
            stale.unlink()
            print(f"removed {stale}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Check the integration on real Home Assistant releases.")
    parser.add_argument("versions", nargs="*", help="Home Assistant versions (default: oldest supported and newest)")
    parser.add_argument("--venvs", type=Path, required=True, help="folder of the cached per-release venvs")
    parser.add_argument("--keep-failed", action="store_true", help="keep a failed release's config folder")
    parser.add_argument(
        "--refresh-constraints",
        type=Path,
        metavar="DIR",
        help="only download the releases' package_constraints.txt into DIR (tests/fixtures/constraints)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    python = sys.executable
    for version in args.versions:
        if version not in ALIASES and not VERSION.match(version):
            print(f"compat: '{version}' is not a Home Assistant version (like 2026.11.0)", file=sys.stderr)
            return 2
    try:
        published = published_versions(index_python(args.venvs, python))
    except CompatError as err:
        print(f"compat: {err}", file=sys.stderr)
        return 2
    versions = [_resolve(v, published) for v in args.versions] or [oldest_supported(), published[0]]
    missing = [version for version in versions if version not in published]
    if missing:
        print(f"compat: Home Assistant {', '.join(missing)} is not published on the package index", file=sys.stderr)
        return 2
    if args.refresh_constraints:
        return refresh_constraints(args, list(dict.fromkeys(versions)))
    results: dict[str, str] = {}
    unavailable: dict[str, list[str]] = {}
    for version in dict.fromkeys(versions):
        print(f"[compat] Home Assistant {version} ...", file=sys.stderr)
        skipped: list[str] = []
        results[version] = check(version, args.venvs, python, args.keep_failed, skipped)
        if skipped:
            unavailable[version] = skipped
        print(f"[compat] Home Assistant {version}: {results[version]}", file=sys.stderr)
    summary: dict[str, object] = {"ha": results, "seconds": round(time.monotonic() - started, 1)}
    if unavailable:
        # Other integrations' pins the package index here lacks (never ours): said, not hidden.
        summary["not_on_index"] = unavailable
    print(json.dumps(summary))
    return 0 if all(result == "ok" for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
