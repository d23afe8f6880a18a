"""The GitHub workflows pass actionlint and zizmor, offline (both ship as wheels, see requirements_test.txt).

actionlint checks the workflow syntax, expressions, action inputs and runner labels; zizmor
checks their security (pinned actions, credentials, template injection, permissions). Neither
needs the network here: zizmor runs its offline audits only.
"""

from __future__ import annotations

from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _tool(name: str) -> str:
    """The linter installed beside this interpreter (the project's venv)."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert path is not None, f"{name} is not installed: it comes with requirements_test.txt"
    return path


def test_the_release_test_and_validate_workflows_exist() -> None:
    assert {path.name for path in WORKFLOWS} >= {"tests.yml", "validate.yml", "release.yml"}


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["actionlint", "-no-color"], id="actionlint"),
        pytest.param(["zizmor", "--offline", "--no-progress", "--format", "plain"], id="zizmor"),
    ],
)
def test_workflows_lint_clean(command: list[str]) -> None:
    result = subprocess.run(
        [_tool(command[0]), *command[1:], *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_would_catch_an_unpinned_action(tmp_path: Path) -> None:
    """The lint can fail: a workflow with a tag-pinned action is refused."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v4\n        with:\n          persist-credentials: false\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout + result.stderr
