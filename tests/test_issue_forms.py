"""The GitHub issue forms parse as YAML and ask for what a report needs.

GitHub's issue-form schema: ``name``, ``description`` and ``body`` at the top; every body element
of type input, textarea, dropdown or checkboxes has a unique ``id`` and a label; dropdowns and
checkboxes have options; a markdown element has a value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

FORMS_DIR = Path(__file__).resolve().parents[1] / ".github" / "ISSUE_TEMPLATE"
FORMS = sorted(path for path in FORMS_DIR.glob("*.yml") if path.name != "config.yml")
FIELD_TYPES = {"input", "textarea", "dropdown", "checkboxes"}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path.name
    return data


def _required(form: dict[str, Any]) -> set[str]:
    return {
        element["id"]
        for element in form["body"]
        if element["type"] in FIELD_TYPES and element.get("validations", {}).get("required")
    }


def _form(name: str) -> dict[str, Any]:
    forms = {_load(path)["name"]: _load(path) for path in FORMS}
    assert name in forms, sorted(forms)
    return forms[name]


@pytest.mark.parametrize("path", FORMS, ids=lambda path: path.name)
def test_every_form_follows_the_schema(path: Path) -> None:
    form = _load(path)
    assert set(form) <= {"name", "description", "title", "labels", "assignees", "projects", "type", "body"}
    assert isinstance(form["name"], str) and form["name"]
    assert isinstance(form["description"], str) and form["description"]
    ids = []
    for element in form["body"]:
        attributes = element["attributes"]
        if element["type"] == "markdown":
            assert attributes["value"].strip()
            continue
        assert element["type"] in FIELD_TYPES, element
        ids.append(element["id"])
        assert attributes["label"].strip()
        if element["type"] in {"dropdown", "checkboxes"}:
            assert attributes["options"], element["id"]
    assert len(ids) == len(set(ids)), ids
    assert all(i.replace("_", "").isalnum() for i in ids), ids


def test_the_bug_form_asks_for_diagnostics_and_versions() -> None:
    assert _required(_form("A bug")) >= {"problem", "diagnostics", "ha_version", "integration_version"}


def test_the_module_form_asks_for_the_survey_versions_chemistry_and_cells() -> None:
    form = _form("My module works / differs")
    assert _required(form) >= {"survey", "hardware_version", "software_version", "chemistry", "cell_count"}
    chemistry = next(element for element in form["body"] if element.get("id") == "chemistry")
    # The register table's three battery types.
    assert [option.split()[0] for option in chemistry["attributes"]["options"]] == ["LiFePO4", "Li-ion", "LTO"]


def test_config_turns_blank_issues_off_and_links_resolve_to_urls() -> None:
    config = _load(FORMS_DIR / "config.yml")
    assert config["blank_issues_enabled"] is False
    for link in config["contact_links"]:
        assert set(link) == {"name", "url", "about"}
        assert link["url"].startswith("https://")


def test_a_broken_form_is_caught(tmp_path: Path) -> None:
    """The schema check can fail: a field without an id is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\ndescription: y\nbody:\n  - type: input\n    attributes:\n      label: z\n")
    with pytest.raises(KeyError):
        test_every_form_follows_the_schema(bad)
