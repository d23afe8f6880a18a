"""List, per language, the keys of en.json a translation lacks (and the keys it has that en.json has not).

    python3 scripts/translations_missing.py [translations folder]

The folder defaults to the integration's translations/. Prints nothing and exits 0 when every
language has exactly en.json's keys; otherwise prints the gaps and exits 1. Standard library
only, so it runs with any Python 3 after a merge, without the project's environment.
"""

from __future__ import annotations

import json
from pathlib import Path
import sys
from typing import Any

DEFAULT = Path(__file__).resolve().parents[1] / "custom_components" / "daly_active_balance" / "translations"


def keys(tree: Any, prefix: str = "") -> set[str]:
    """The dotted paths of the strings in a translation file."""
    if not isinstance(tree, dict):
        return {prefix}
    found: set[str] = set()
    for key, value in tree.items():
        found |= keys(value, f"{prefix}.{key}" if prefix else key)
    return found


def gaps(folder: Path) -> list[str]:
    """The report's lines, language by language in name order; empty when nothing is missing."""
    english = keys(json.loads((folder / "en.json").read_text(encoding="utf-8")))
    lines: list[str] = []
    for path in sorted(folder.glob("*.json")):
        if path.stem == "en":
            continue
        have = keys(json.loads(path.read_text(encoding="utf-8")))
        for label, found in (("missing", english - have), ("not in en.json", have - english)):
            if found:
                lines.append(f"{path.stem}: {len(found)} {label}")
                lines.extend(f"  {key}" for key in sorted(found))
    return lines


def main(argv: list[str]) -> int:
    lines = gaps(Path(argv[1]) if len(argv) > 1 else DEFAULT)
    if lines:
        print("\n".join(lines))
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
