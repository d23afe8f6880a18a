"""Repair issues from the pack checks' findings and the pack insights' verdict; each clears itself.

The coordinator hands over plain data after every poll (the entry's id, title and link, and
the findings of ``checks``); nothing here reads the coordinator. Placeholders hold what the
user acts on (which cells, the range, the setting, the registers in doubt), never a live
reading, so a drifting value does not rewrite an issue on every poll.

An issue lives as long as its finding, not as long as the entry is loaded: the checks' memory
(``async_pack_checks``) outlives reloads and setup retries, so a reload neither withdraws an
issue nor raises it anew, and one the user ignored stays ignored until its finding changes.
After a restart the memory resumes the findings whose issues the registry still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.translation import async_translate_state, async_translate_state_attr
from homeassistant.util.hass_dict import HassKey

from aiodalybalancer.redact import redact
from aiodalybalancer.registers import CHEMISTRY, MIN_PACK_VOLTAGE

from .checks import DOUBT_AFTER, VERIFY_BALANCING, Findings, PackChecks, Reason
from .const import DOMAIN
from .insights import NotKeepingUp

ISSUE_CELL_OUT_OF_RANGE: Final = Reason.CELL_OUT_OF_RANGE.value
ISSUE_STRING_COUNT: Final = Reason.STRING_COUNT.value
ISSUE_PACK_VOLTAGE_LOW: Final = Reason.PACK_VOLTAGE_LOW.value
ISSUE_BALANCE_VOLTAGE: Final = Reason.BALANCE_VOLTAGE.value
ISSUE_STOPPED_ANSWERING: Final = Reason.STOPPED_ANSWERING.value
ISSUE_VERIFY_BALANCING: Final = VERIFY_BALANCING
#: Raised by the pack insights (``async_update_not_keeping_up``), not by the pack checks.
ISSUE_NOT_KEEPING_UP: Final = "not_keeping_up"
ISSUES: Final = (*(reason.value for reason in Reason), ISSUE_VERIFY_BALANCING, ISSUE_NOT_KEEPING_UP)
#: Raised as errors: the pack or its wiring is at risk. The rest are warnings: a setting, a
#: silent module, a register whose meaning is inferred (string count) or in doubt (balancing).
_ERRORS: Final = frozenset({ISSUE_CELL_OUT_OF_RANGE, ISSUE_PACK_VOLTAGE_LOW})
#: The issue form that asks for what a module's report needs (.github/ISSUE_TEMPLATE).
MODULE_REPORT_FORM: Final = "module_report.yml"
#: The battery type select's translation key (select.py), whose option names the issues use.
BATTERY_TYPE_TRANSLATION_KEY: Final = "battery_type"
#: The "not keeping up" binary sensor's translation key and its attribute listing the causes
#: (binary_sensor.py), whose translated values the issue names.
NOT_KEEPING_UP_TRANSLATION_KEY: Final = ISSUE_NOT_KEEPING_UP
ATTR_CAUSES: Final = "causes"


@dataclass(frozen=True, slots=True)
class IssueTarget:
    """The config entry the issues belong to, as plain data."""

    entry_id: str
    #: The entry's title, shown in every issue's title.
    title: str
    #: The address or port the entry connects to (its secrets are kept out of the placeholders).
    link: str
    #: Where users report what they found (the manifest's issue tracker).
    issue_tracker: str


def issue_id(entry_id: str, issue: str) -> str:
    """The issue registry id of ``issue`` for the entry ``entry_id``."""
    return f"{issue}_{entry_id}"


def _placeholders(findings: Findings, target: IssueTarget, chemistry_name: str) -> dict[str, dict[str, str] | None]:
    """Each issue's placeholders, or None where its finding does not hold."""
    chemistry = findings.chemistry
    facts = CHEMISTRY[chemistry]
    start = findings.balance_voltage
    return {
        ISSUE_CELL_OUT_OF_RANGE: {
            "cells": ", ".join(map(str, findings.cells)),
            "chemistry": chemistry_name,
            "minimum": f"{facts.plausible_min:.2f}",
            "maximum": f"{facts.plausible_max:.2f}",
        }
        if findings.cells
        else None,
        ISSUE_STRING_COUNT: {"configured": str(findings.string_count[0]), "reported": str(findings.string_count[1])}
        if findings.string_count is not None
        else None,
        ISSUE_PACK_VOLTAGE_LOW: {"minimum": f"{MIN_PACK_VOLTAGE:g}"} if findings.pack_voltage_low else None,
        ISSUE_BALANCE_VOLTAGE: {
            "value": f"{start.value:.2f}",
            "chemistry": chemistry_name,
            "minimum": f"{start.minimum:.2f}",
            "maximum": f"{start.maximum:.2f}",
        }
        if start is not None
        else None,
        ISSUE_STOPPED_ANSWERING: {} if findings.stopped_answering else None,
        ISSUE_VERIFY_BALANCING: {
            "registers": ", ".join(findings.balancing_doubt),
            "minutes": f"{DOUBT_AFTER / 60:g}",
            "issue_tracker": f"{target.issue_tracker}/new?template={MODULE_REPORT_FORM}",
        }
        if findings.balancing_doubt
        else None,
    }


#: The pack checks' memory of each entry, by entry id.
_MEMORY: HassKey[dict[str, PackChecks]] = HassKey(f"{DOMAIN}_pack_checks")


@callback
def async_pack_checks(hass: HomeAssistant, entry_id: str) -> PackChecks:
    """The pack checks' memory of the entry, kept through reloads and setup retries.

    A new one (after a restart) resumes the findings whose issues the registry still holds.
    """
    memory = hass.data.setdefault(_MEMORY, {})
    if (checks := memory.get(entry_id)) is None:
        registry = ir.async_get(hass)
        held = (issue for issue in ISSUES if registry.async_get_issue(DOMAIN, issue_id(entry_id, issue)) is not None)
        checks = memory[entry_id] = PackChecks(resumed=held)
    return checks


@callback
def async_update_issues(hass: HomeAssistant, target: IssueTarget, findings: Findings, *, clear: bool = True) -> None:
    """Raise or clear every issue of ``target`` from the latest findings.

    ``clear`` False (the findings do not yet cover the measured conditions) only raises.
    """
    registry = ir.async_get(hass)
    # The battery type as its select shows it ("Li-ion (NMC)", not "li_ion"), in Home Assistant's
    # language (setting the integration up loaded its translations).
    chemistry_name = async_translate_state(
        hass, findings.chemistry.value, Platform.SELECT, DOMAIN, BATTERY_TYPE_TRANSLATION_KEY, None
    )
    # The same placeholders with the battery type's key: what the finding is, in no language.
    facts = _placeholders(findings, target, findings.chemistry.value)
    for issue, placeholders in _placeholders(findings, target, chemistry_name).items():
        if placeholders is None:
            if clear:
                ir.async_delete_issue(hass, DOMAIN, issue_id(target.entry_id, issue))
            continue
        _raise(hass, registry, target, issue, placeholders=placeholders, finding={**(facts[issue] or {})})


def _raise(
    hass: HomeAssistant,
    registry: ir.IssueRegistry,
    target: IssueTarget,
    issue: str,
    *,
    placeholders: dict[str, str],
    finding: dict[str, str | int | float | None],
) -> None:
    """Raise ``issue`` of ``target`` (again if the user ignored another finding than this one).

    ``finding`` is what the issue says in no language (kept as the issue's data): a change of
    Home Assistant's language changes the words, never the finding.
    """
    key = issue_id(target.entry_id, issue)
    known = registry.async_get_issue(DOMAIN, key)
    if known is not None and known.dismissed_version is not None and _changed(known, finding):
        # Another finding than the one the user ignored: show it.
        ir.async_delete_issue(hass, DOMAIN, key)
    ir.async_create_issue(
        hass,
        DOMAIN,
        key,
        data=finding,
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR if issue in _ERRORS else ir.IssueSeverity.WARNING,
        translation_key=issue,
        translation_placeholders={
            name: redact(value, target.link) for name, value in {"title": target.title, **placeholders}.items()
        },
    )


@callback
def async_update_not_keeping_up(
    hass: HomeAssistant, target: IssueTarget, verdict: NotKeepingUp | None, *, threshold: float
) -> None:
    """Raise the "not keeping up" issue while the insights find it, clear it when they no longer do.

    The placeholders say what to check (the causes, the cell, the option's threshold and days),
    not the trend, which changes every day: an ignored issue comes back only for other causes.
    """
    if verdict is None:
        ir.async_delete_issue(hass, DOMAIN, issue_id(target.entry_id, ISSUE_NOT_KEEPING_UP))
        return
    causes = [
        async_translate_state_attr(
            hass, cause.value, Platform.BINARY_SENSOR, DOMAIN, NOT_KEEPING_UP_TRANSLATION_KEY, None, ATTR_CAUSES
        )
        for cause in verdict.causes
    ]
    placeholders = {
        "causes": ", ".join(causes) or "–",
        "cell": "–" if verdict.cell is None else str(verdict.cell),
        "threshold": f"{threshold:g}",
        "days": str(verdict.days),
    }
    finding: dict[str, str | int | float | None] = {
        "causes": ",".join(cause.value for cause in verdict.causes),
        "cell": verdict.cell,
        "threshold": threshold,
        "days": verdict.days,
    }
    _raise(hass, ir.async_get(hass), target, ISSUE_NOT_KEEPING_UP, placeholders=placeholders, finding=finding)


def _changed(known: ir.IssueEntry, finding: dict[str, str | int | float | None]) -> bool:
    """Whether ``finding`` is another finding than the one ``known`` was raised for.

    Decided on the finding's facts (its ``data``), not on the placeholders, whose words follow
    Home Assistant's language: a language change is no new finding. An issue restored after a
    restart carries no data: it is taken as unchanged.
    """
    return known.data is not None and known.data != finding


@callback
def async_forget(hass: HomeAssistant, entry_id: str) -> None:
    """Remove the entry's issues and the checks' memory (the entry is removed or disabled)."""
    hass.data.get(_MEMORY, {}).pop(entry_id, None)
    for issue in ISSUES:
        ir.async_delete_issue(hass, DOMAIN, issue_id(entry_id, issue))
