"""The CI skip gate (tests/skip_gate.py), in a real pytest run of a small test file."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

from tests import skip_gate

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = """
import pytest

def test_runs():
    assert True

def test_skips():
    pytest.skip("no widget here")

@pytest.mark.xfail(reason="known", strict=True)
def test_known_failure():
    assert False
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-p", "tests.skip_gate", "-c", os.devnull, "--rootdir", str(tmp_path)]
    command += ["-p", "no:cacheprovider", str(tmp_path / "test_sample.py")]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_an_unexpected_skip_fails_the_run_under_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, "true")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "unexpected skips under CI" in result.stdout
    assert "test_sample.py::test_skips: Skipped: no widget here" in result.stdout
    assert "test_known_failure" not in result.stdout.split("unexpected skips under CI")[1]


@pytest.mark.parametrize("ci", [None, "false"])
def test_a_skip_is_only_a_skip_outside_ci(tmp_path: Path, ci: str | None) -> None:
    result = _run(tmp_path, ci)
    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert "1 passed, 1 skipped, 1 xfailed" in result.stdout


def test_the_allow_list_names_tests_files_and_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(skip_gate, "ALLOWED_SKIPS", {"tests/a.py": "why", "tests/b.py::test_x": "why"})
    assert skip_gate.allowed("tests/a.py::test_anything")
    assert skip_gate.allowed("tests/b.py::test_x")
    assert skip_gate.allowed("tests/b.py::test_x[1]")
    assert not skip_gate.allowed("tests/b.py::test_xy")
    assert not skip_gate.allowed("tests/ab.py::test_x")


def test_every_allowed_skip_says_why() -> None:
    assert all(reason.strip() for reason in skip_gate.ALLOWED_SKIPS.values())
