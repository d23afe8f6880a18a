"""Generated documentation stays in step with the register table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_register_docs_are_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_register_docs", ROOT / "scripts" / "gen_register_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    assert (ROOT / "docs" / "registers.md").read_text(encoding="utf-8") == expected, (
        "docs/registers.md is stale: run scripts/gen_register_docs.py"
    )
