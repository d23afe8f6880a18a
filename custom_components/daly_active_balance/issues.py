"""Repair issues from the pack checks' findings; each clears itself when its finding goes away.

The coordinator hands over plain data after every poll (the entry's id, title and link, and
the findings of ``checks``); nothing here reads the coordinator. Placeholders hold what the
user acts on (which cells, the range, the setting, the registers in doubt), never a live
reading, so a drifting value does not rewrite an issue on every poll.
"""

from __future__ import annotations

from typing import Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from aiodalybalancer.record import Record
from aiodalybalancer.redact import redact
from aiodalybalancer.registers import CHEMISTRY, MIN_PACK_VOLTAGE

from .checks import DOUBT_AFTER, Findings, Reason
from .const import DOMAIN

ISSUE_CELL_OUT_OF_RANGE: Final = Reason.CELL_OUT_OF_RANGE.value
ISSUE_STRING_COUNT: Final = Reason.STRING_COUNT.value
ISSUE_PACK_VOLTAGE_LOW: Final = Reason.PACK_VOLTAGE_LOW.value
ISSUE_BALANCE_VOLTAGE: Final = Reason.BALANCE_VOLTAGE.value
ISSUE_STOPPED_ANSWERING: Final = Reason.STOPPED_ANSWERING.value
ISSUE_VERIFY_BALANCING: Final = "verify_balancing"
ISSUES: Final = (*(reason.value for reason in Reason), ISSUE_VERIFY_BALANCING)
#: Raised as errors: the pack or its wiring is at risk. The rest are warnings: a setting, a
#: silent module, a register whose meaning is inferred (string count) or in doubt (balancing).
_ERRORS: Final = frozenset({ISSUE_CELL_OUT_OF_RANGE, ISSUE_PACK_VOLTAGE_LOW})


class IssueTarget(Record):
    """The config entry the issues belong to, as plain data."""

    __slots__ = ("entry_id", "title", "link", "issue_tracker")

    def __init__(self, entry_id: str, title: str, link: str, issue_tracker: str) -> None:
        self.entry_id: Final = entry_id
        #: The entry's title, shown in every issue's title.
        self.title: Final = title
        #: The address or port the entry connects to (its secrets are kept out of the placeholders).
        self.link: Final = link
        #: Where users report what they found (the manifest's issue tracker).
        self.issue_tracker: Final = issue_tracker


def issue_id(entry_id: str, issue: str) -> str:
    """The issue registry id of ``issue`` for the entry ``entry_id``."""
    return f"{issue}_{entry_id}"


def _placeholders(findings: Findings, target: IssueTarget) -> dict[str, dict[str, str] | None]:
    """Each issue's placeholders, or None where its finding does not hold."""
    chemistry = findings.chemistry
    facts = CHEMISTRY[chemistry]
    start = findings.balance_voltage
    return {
        ISSUE_CELL_OUT_OF_RANGE: {
            "cells": ", ".join(map(str, findings.cells)),
            "chemistry": chemistry.value,
            "minimum": f"{facts.plausible_min:.2f}",
            "maximum": f"{facts.plausible_max:.2f}",
        }
        if findings.cells
        else None,
        ISSUE_STRING_COUNT: {"configured": str(findings.string_count[0]), "reported": str(findings.string_count[1])}
        if findings.string_count is not None
        else None,
        ISSUE_PACK_VOLTAGE_LOW: {"minimum": f"{MIN_PACK_VOLTAGE:.0f}"} if findings.pack_voltage_low else None,
        ISSUE_BALANCE_VOLTAGE: {
            "value": f"{start.value:.2f}",
            "chemistry": chemistry.value,
            "minimum": f"{start.minimum:.2f}",
            "maximum": f"{start.maximum:.2f}",
        }
        if start is not None
        else None,
        ISSUE_STOPPED_ANSWERING: {} if findings.stopped_answering else None,
        ISSUE_VERIFY_BALANCING: {
            "registers": ", ".join(findings.balancing_doubt),
            "minutes": f"{DOUBT_AFTER / 60:g}",
            "issue_tracker": target.issue_tracker,
        }
        if findings.balancing_doubt
        else None,
    }


@callback
def async_update_issues(hass: HomeAssistant, target: IssueTarget, findings: Findings) -> None:
    """Raise or clear every issue of ``target`` from the latest findings."""
    for issue, placeholders in _placeholders(findings, target).items():
        if placeholders is None:
            ir.async_delete_issue(hass, DOMAIN, issue_id(target.entry_id, issue))
            continue
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id(target.entry_id, issue),
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.ERROR if issue in _ERRORS else ir.IssueSeverity.WARNING,
            translation_key=issue,
            translation_placeholders={
                key: redact(value, target.link) for key, value in {"title": target.title, **placeholders}.items()
            },
        )


@callback
def async_delete_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Remove the entry's issues (on unload: nothing would clear them any more)."""
    for issue in ISSUES:
        ir.async_delete_issue(hass, DOMAIN, issue_id(entry_id, issue))
