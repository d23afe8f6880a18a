"""The cells card's own translation table, read from the card's source (no JavaScript engine needed)."""

from __future__ import annotations

import json
from pathlib import Path
import re

CARD_FILE = (
    Path(__file__).resolve().parents[1]
    / "custom_components"
    / "daly_active_balance"
    / "frontend"
    / "daly-balancer-card.js"
)


def card_strings(source: str | None = None) -> dict[str, dict[str, str]]:
    """The card's STRINGS table: one block per language, one line per text.

    Strict on purpose: a line of another shape fails here rather than being skipped unseen.
    """
    if source is None:
        source = CARD_FILE.read_text(encoding="utf-8")
    start = source.index("const STRINGS = {\n")
    body = source[start : source.index("\n};\n", start)]
    table: dict[str, dict[str, str]] = {}
    language = ""
    for line in body.splitlines()[1:]:
        if opened := re.fullmatch(r"  ([a-z]{2}): \{", line):
            language = opened[1]
            table[language] = {}
        elif text := re.fullmatch(r'    (\w+): "((?:[^"\\]|\\.)*)",', line):
            assert language, line
            assert text[1] not in table[language], (language, text[1])
            table[language][text[1]] = json.loads(f'"{text[2]}"')
        else:
            assert line == "  },", line
    return table
