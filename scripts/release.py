"""Check a release tag and build what the release ships (the GitHub release workflow runs this).

    python3 scripts/release.py --tag v0.2.0 --out dist

The tag must be ``v`` + the manifest's version, CHANGELOG.md must have that version's
section, and the manifest must require the library (packages/aiodalybalancer) at exactly its
version (the workflow publishes that version to PyPI first, when it is new there). Writes ``dist/daly_active_balance.zip`` (the integration's files at the zip's root, as
HACS unpacks a ``zip_release`` into ``custom_components/daly_active_balance``) and
``dist/release-notes.md`` (the changelog's section). Standard library only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import re
import sys
import tomllib
import zipfile

REPO = Path(__file__).resolve().parents[1]
COMPONENT = REPO / "custom_components" / "daly_active_balance"
CHANGELOG = REPO / "CHANGELOG.md"
HACS = REPO / "hacs.json"
LIBRARY = REPO / "packages" / "aiodalybalancer"


class ReleaseError(Exception):
    """Why this tag cannot be released."""


def manifest_version() -> str:
    """The integration's version, from its manifest."""
    return str(json.loads((COMPONENT / "manifest.json").read_text(encoding="utf-8"))["version"])


def library_version() -> str:
    """The library's version, from its pyproject.toml."""
    with (LIBRARY / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def check_library_pin() -> str:
    """The library's version, once the manifest is seen to require exactly it."""
    version = library_version()
    requirements = json.loads((COMPONENT / "manifest.json").read_text(encoding="utf-8"))["requirements"]
    if f"aiodalybalancer=={version}" not in requirements:
        raise ReleaseError(f"manifest.json must require aiodalybalancer=={version} (it has {requirements})")
    return version


def changelog_section(version: str, text: str) -> str:
    """The body of ``## [version]`` in a Keep a Changelog file."""
    match = re.search(rf"^## \[{re.escape(version)}\][^\n]*\n(.*?)(?=^## \[|\Z)", text, re.MULTILINE | re.DOTALL)
    if match is None or not match.group(1).strip():
        raise ReleaseError(f"CHANGELOG.md has no section for {version}")
    return match.group(1).strip() + "\n"


def shipped_files() -> list[Path]:
    """What the zip holds: the integration folder, without caches."""
    return sorted(
        path
        for path in COMPONENT.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}
    )


def build(tag: str, out: Path) -> Path:
    """Check ``tag`` and write the zip and the release notes into ``out``; the zip's path."""
    version = manifest_version()
    if tag != f"v{version}":
        raise ReleaseError(f"tag {tag} does not match the manifest's version {version} (expected v{version})")
    notes = changelog_section(version, CHANGELOG.read_text(encoding="utf-8"))
    check_library_pin()
    filename = json.loads(HACS.read_text(encoding="utf-8")).get("filename", f"{COMPONENT.name}.zip")
    out.mkdir(parents=True, exist_ok=True)
    target = out / filename
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in shipped_files():
            archive.write(path, path.relative_to(COMPONENT).as_posix())
    (out / "release-notes.md").write_text(notes, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", required=True, help="the pushed tag, e.g. v0.2.0")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument(
        "--library-version",
        action="store_true",
        help="only check the manifest's pin of the library and print version=<its version>",
    )
    args = parser.parse_args(argv)
    try:
        if args.library_version:
            print(f"version={check_library_pin()}")
            return 0
        target = build(args.tag, args.out)
    except ReleaseError as err:
        print(f"release: {err}", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
