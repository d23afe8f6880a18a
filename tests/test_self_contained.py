"""The repository stands on its own: nothing it runs reads a path beside or above it.

A clone on GitHub has nothing beside it, so a test, benchmark, script or the integration that
reaches out of the repository (the folder beside it, ``Path(__file__).parents[N]`` past the root) passes
here and fails there. This reads the code as text, so it also covers what the suite does not run.
"""

from __future__ import annotations

from pathlib import Path
import re

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("custom_components", "packages", "tests", "benchmarks", "reliability", "scripts")
SUFFIXES = {".py", ".sh", ".yml", ".yaml", ".toml", ".cfg", ""}
#: A path that names the folder beside the repository, or climbs out of it by text.
OUTSIDE = re.compile(r"""\.\./shared|["']shared["']|\.\./\.\./""")
PARENTS = re.compile(r"__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")
PARENT_CHAIN = re.compile(r"__file__\)(?:\.resolve\(\))?((?:\.parent)+)")


def _sources() -> list[Path]:
    files = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
                files.append(path)
    return files


def _escapes(path: Path, text: str) -> list[str]:
    """What in ``text`` (the content of ``path``) points outside the repository."""
    found = [m.group(0) for m in OUTSIDE.finditer(text)]
    # Path(__file__).parents[k] is the file's folder for k = 0, so the root is at k = depth (the
    # folders between it and the file); a chain of n ``.parent`` reaches the root at n = depth + 1.
    depth = len(path.relative_to(ROOT).parts) - 1
    found += [m.group(0) for m in PARENTS.finditer(text) if int(m.group(1)) > depth]
    found += [m.group(0) for m in PARENT_CHAIN.finditer(text) if m.group(1).count(".parent") > depth + 1]
    return found


def test_the_check_sees_an_escape() -> None:
    """The check itself: each way out is found, a path inside the root is not."""
    probe = ROOT / "tests" / "protocol" / "probe.py"
    # The probes are assembled, so that this file does not itself name the folder beside the root.
    beside = "sha" + "red"
    assert _escapes(probe, f'ROOT / ".." / "{beside}"')
    assert _escapes(probe, f"Path('../{beside}/vectors')")
    assert _escapes(probe, "Path(__file__).resolve().parents[3] / 'x'")
    assert _escapes(probe, "Path(__file__).parent.parent.parent.parent")
    assert not _escapes(probe, "Path(__file__).resolve().parents[2] / 'tests'")
    assert not _escapes(probe, "Path(__file__).resolve().parent.parent.parent / 'x'")


def test_nothing_reads_outside_the_repository() -> None:
    me = Path(__file__).resolve()
    sources = [path for path in _sources() if path != me]
    assert len(sources) > 50
    offenders = {
        str(path.relative_to(ROOT)): hits
        for path in sources
        if (hits := _escapes(path, path.read_text(encoding="utf-8", errors="replace")))
    }
    assert not offenders, f"these reach outside the repository: {offenders}"
