"""The pack insights in Home Assistant: kept per entry in a ``Store``, fed one observation per poll.

``insights.py`` works the days out without Home Assistant. This keeps them across restarts (one
``Store`` per config entry, its minor version following the insights' own format version, and
removed with the entry), files each poll under Home Assistant's local date, and hands the
options over. The coordinator holds one and feeds it; the entities read ``answers``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
import math
from typing import Any, Final, override

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from aiodalybalancer.models import Settings, Status

from .const import DOMAIN, LOGGER
from .insights import (
    DEFAULT_MAX_GAP,
    DEFAULT_RISING_DAYS,
    DEFAULT_RISING_MV_PER_DAY,
    FORMAT_VERSION,
    Answers,
    Insights,
    Observation,
    migrate,
)

#: The Store's major version: a change Home Assistant cannot migrate (none so far).
STORE_VERSION: Final = 1
#: The minor version is the insights' format version, so Home Assistant calls the migration
#: (``insights.migrate``) whenever the stored layout is older.
STORE_MINOR_VERSION: Final = FORMAT_VERSION
#: At most one save is asked for in this many seconds of polls: what a crash may lose of today.
SAVE_EVERY: Final = 300.0
#: How long after it is asked for a save is written (Home Assistant writes it at stop anyway).
SAVE_DELAY: Final = 10.0


def store_key(entry_id: str) -> str:
    """The storage key of the entry's insights (``.storage/<key>``)."""
    return f"{DOMAIN}.insights.{entry_id}"


class InsightsStore(Store[dict[str, Any]]):
    """One entry's stored insights, migrated on load."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """The Store of the entry ``entry_id``."""
        super().__init__(hass, STORE_VERSION, store_key(entry_id), minor_version=STORE_MINOR_VERSION)

    @override
    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: dict[str, Any]
    ) -> dict[str, Any]:
        """Bring an older layout up to this one (a newer one is read as far as it can be)."""
        if old_major_version > STORE_VERSION or old_minor_version > STORE_MINOR_VERSION:
            # A newer release wrote it (and then a downgrade): ``Insights.from_dict`` reads it if
            # it can, and starts afresh otherwise.
            return old_data
        try:
            return dict(migrate(old_data))
        except KeyError, TypeError, ValueError:
            LOGGER.warning("The stored pack insights (%s) could not be read: they start afresh", self.key)
            return {}


class PackInsights:
    """One entry's insights: loaded at setup, one observation per answered poll, saved now and then."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Empty until ``async_load``."""
        self.store = InsightsStore(hass, entry_id)
        self.insights = Insights()
        #: What the insights say after the latest poll (the entities read this, not ``insights``).
        self.answers: Answers = self.insights.answers()
        self._options: dict[str, Any] = {}
        self._loaded = False
        #: The poll time from which the next save may be asked for.
        self._save_due = -math.inf

    def configure(self, update_interval: timedelta | None, *, trend: float | None, days: int | None) -> None:
        """Apply the entry's options (before or after loading).

        The balancing time counts the time between two polls up to ``max_gap``: at least two
        update intervals, so a poll that fails now and then leaves no hole.
        """
        interval = update_interval.total_seconds() if update_interval else 0.0
        self._options = {
            "max_gap": max(DEFAULT_MAX_GAP, 2 * interval),
            "rising_mv_per_day": DEFAULT_RISING_MV_PER_DAY if trend is None else float(trend),
            "rising_days": DEFAULT_RISING_DAYS if days is None else int(days),
        }
        self.insights.configure(**self._options)
        self.answers = self.insights.answers()

    @property
    def options(self) -> dict[str, Any]:
        """The thresholds in force (for the diagnostics)."""
        return dict(self._options)

    async def async_load(self) -> None:
        """Read the entry's stored days (migrated if older; afresh if none or unreadable)."""
        data = await self.store.async_load()
        self.insights = Insights.from_dict(data, **self._options)
        self.answers = self.insights.answers()
        self._loaded = True

    def observe(self, status: Status, settings: Settings, now: float) -> None:
        """Fold one answered poll in (``now``: a monotonic time in seconds), and save now and then."""
        self.insights.observe(Observation.from_poll(now, dt_util.now().date(), status, settings))
        self.answers = self.insights.answers()
        if self._loaded and now >= self._save_due:
            self._save_due = now + SAVE_EVERY
            self.store.async_delay_save(self._data, SAVE_DELAY)

    def _data(self) -> dict[str, Any]:
        return self.insights.as_dict()

    async def async_save(self) -> None:
        """Write the days now (the entry unloads); nothing before they were loaded."""
        if self._loaded:
            await self.store.async_save(self._data())

    @callback
    def async_stop(self, _event: Event) -> None:
        """Home Assistant stops without unloading: have the days written with its final writes."""
        if self._loaded:
            self.store.async_delay_save(self._data)

    def diagnostics(self) -> dict[str, Any]:
        """The options, the kept days (today last) and what they say now."""
        answers = asdict(self.answers)
        if (verdict := self.answers.not_keeping_up) is not None:
            answers["not_keeping_up"]["causes"] = [str(cause) for cause in verdict.causes]
        return {"options": self.options, "days": self.insights.as_dict()["days"], "answers": answers}


async def async_remove_insights(hass: HomeAssistant, entry_id: str) -> None:
    """Remove the stored insights of a removed entry."""
    await InsightsStore(hass, entry_id).async_remove()
