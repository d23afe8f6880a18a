"""The data update coordinator: polls the module, runs the pack checks, keeps the repairs current."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
import time
from typing import Final, override

from homeassistant.components import bluetooth
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.translation import async_get_translations
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.loader import async_get_integration
from homeassistant.util import dt as dt_util

from aiodalybalancer.client import DalyClient, SurveyRange
from aiodalybalancer.errors import (
    ConnectTimeoutError,
    DalyConnectionError,
    DalyError,
    DalyTimeoutError,
    ValueOutOfRangeError,
    WriteNotAcceptedError,
)
from aiodalybalancer.models import Identity, Settings, Status
from aiodalybalancer.redact import redact
from aiodalybalancer.registers import DecodedValue
from aiodalybalancer.transport_ble import BleTransport

from .checks import Findings
from .const import (
    CONF_KEEP_CONNECTED,
    CONF_NOT_KEEPING_UP_DAYS,
    CONF_NOT_KEEPING_UP_TREND,
    CONF_SETTINGS_EVERY,
    CONF_UPDATE_INTERVAL,
    DEFAULT_KEEP_CONNECTED,
    DEFAULT_SETTINGS_EVERY,
    DEFAULT_UPDATE_INTERVAL,
    DOMAIN,
    LOGGER,
)
from .insights import NotKeepingUp
from .insights_store import PackInsights
from .issues import IssueTarget, async_pack_checks, async_update_issues, async_update_not_keeping_up
from .link import entry_link
from .writes import Writable

type DalyConfigEntry = ConfigEntry[DalyCoordinator]

#: The window of the share of successful polls.
POLL_WINDOW: Final = timedelta(hours=1)
#: How long "Let the phone app in" leaves the dongle to the phone app.
RELEASE_WINDOW: Final = timedelta(minutes=10)


def _shown(until: datetime) -> str:
    """The end of the phone app's window as the messages show it (local time)."""
    return dt_util.as_local(until).strftime("%H:%M:%S")


class DongleReleasedError(HomeAssistantError):
    """An action that needs the link, refused while the dongle is left to the phone app."""

    def __init__(self, until: datetime) -> None:
        """Refuse until ``until`` (UTC), the message saying when in local time."""
        super().__init__(
            translation_domain=DOMAIN,
            translation_key="dongle_released",
            translation_placeholders={"until": _shown(until)},
        )
        self.until = until


@dataclass(frozen=True, slots=True)
class DalyData:
    """What the entities read: the latest status and settings."""

    status: Status
    settings: Settings


@dataclass(frozen=True, slots=True)
class Survey:
    """The result of a register survey, and when it ran."""

    time: datetime
    ranges: tuple[SurveyRange, ...]


class DalyCoordinator(DataUpdateCoordinator[DalyData]):
    """Polls one module: status every interval, settings every Nth poll and after writes."""

    config_entry: DalyConfigEntry

    def __init__(self, hass: HomeAssistant, entry: DalyConfigEntry, client: DalyClient) -> None:
        """Set up from the entry's options."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            # Home Assistant logs failures under this name above debug level: no link secret.
            name=redact(entry.title, entry_link(entry.data)),
            update_interval=timedelta(seconds=DEFAULT_UPDATE_INTERVAL),
        )
        self.client = client
        self.identity = Identity()
        self._settings: Settings | None = None
        self._polls = 0
        self._settings_due = True
        #: One poll or one write at a time. A poll decides whether to read the settings only once
        #: it holds this, so a poll that fell due during a write reads what the write left (it
        #: cannot bring the old value back), and a write's own refresh, swallowed by the
        #: debouncer while that poll runs, is not missed.
        self._busy = asyncio.Lock()
        #: When each poll of the last ``POLL_WINDOW`` ended, and whether it succeeded.
        self._outcomes: deque[tuple[datetime, bool]] = deque()
        #: The last error a poll or the setup met, its link secrets taken out (None: none yet).
        self.last_error: str | None = None
        #: The last register survey (``async_survey``), None until one has run.
        self.last_survey: Survey | None = None
        #: The pack checks' memory and latest findings: the repair issues and the pack-check
        #: entities read the same ones. It outlives this coordinator (reloads, setup retries).
        self.checks = async_pack_checks(hass, entry.entry_id)
        self._issue_tracker = ""
        #: Whether the refresh under way follows a failed one.
        self._failing = False
        #: Until when the dongle is left to the phone app (None: it is not), and the timer that
        #: ends that window. Kept in memory only: a restart or reload ends the window.
        self._released_until: datetime | None = None
        #: The language whose entity translations were last loaded for the repairs' texts.
        self._translations_loaded: str | None = None
        self._unsub_release: CALLBACK_TYPE | None = None
        self._init_insights()
        self.apply_options()

    @property
    def settings(self) -> Settings | None:
        """The settings last read from the module."""
        return self._settings

    @property
    def link(self) -> str:
        """The address or port this entry connects to, as its data holds it (secrets included)."""
        return entry_link(self.config_entry.data)

    @property
    def is_ble(self) -> bool:
        """True when the module is reached over Bluetooth."""
        return isinstance(self.client.transport, BleTransport)

    @property
    def rssi(self) -> int | None:
        """The signal Home Assistant last received from the dongle, from any adapter or proxy.

        None for a serial entry, and while no adapter has heard the dongle.
        """
        if not self.is_ble:
            return None
        seen = bluetooth.async_last_service_info(self.hass, self.link, connectable=True)
        return seen.rssi if seen is not None else None

    @property
    def poll_success_share(self) -> float | None:
        """The share of the last hour's polls that succeeded (%), None before the first poll."""
        self._forget_old_outcomes()
        if not self._outcomes:
            return None
        return round(100 * sum(ok for _, ok in self._outcomes) / len(self._outcomes), 1)

    def _forget_old_outcomes(self) -> None:
        horizon = dt_util.utcnow() - POLL_WINDOW
        while self._outcomes and self._outcomes[0][0] < horizon:
            self._outcomes.popleft()

    def _record(self, error: DalyError | None) -> None:
        """Count a poll's outcome, and remember its error (secrets taken out)."""
        self._outcomes.append((dt_util.utcnow(), error is None))
        self._forget_old_outcomes()
        if error is not None:
            self.last_error = redact(f"{type(error).__name__}: {error}", self.link)

    def apply_options(self) -> None:
        """Apply the entry's options without a reload."""
        options = self.config_entry.options
        self.update_interval = timedelta(seconds=options.get(CONF_UPDATE_INTERVAL, DEFAULT_UPDATE_INTERVAL))
        self.settings_every: int = options.get(CONF_SETTINGS_EVERY, DEFAULT_SETTINGS_EVERY)
        transport = self.client.transport
        if isinstance(transport, BleTransport):
            transport.keep_connected = options.get(CONF_KEEP_CONNECTED, DEFAULT_KEEP_CONNECTED)
        self.insights.configure(
            self.update_interval,
            trend=options.get(CONF_NOT_KEEPING_UP_TREND),
            days=options.get(CONF_NOT_KEEPING_UP_DAYS),
        )

    @override
    async def async_shutdown(self) -> None:
        """Stop polling and end the phone app's window, then release the port (its lock) or the BLE link."""
        if self._unsub_release is not None:
            self._unsub_release()
            self._unsub_release = None
        await super().async_shutdown()
        await self.client.close()

    @override
    async def _async_setup(self) -> None:
        """Read who the module is once (nothing is ever written during setup)."""
        self._issue_tracker = str((await async_get_integration(self.hass, DOMAIN)).issue_tracker)
        await self.insights.async_load()
        try:
            self.identity = await self.client.read_identity()
        except DalyError as err:
            self._record(err)
            # A setup that fails counts as a failed poll: a module silent through reloads and
            # retries keeps its warning, and one silent since the start gets it.
            self._report(self.checks.poll_failed())
            raise self._cannot_reach(err) from err

    def _cannot_reach(self, err: DalyError) -> UpdateFailed:
        """The failure of a poll or setup the module did not answer, naming the cause."""
        # These texts are logged (at error level) and shown as the entry's reason: no link secret.
        link = redact(self.client.transport.description, self.link)
        if isinstance(err, ConnectTimeoutError):
            return UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="connect_timeout",
                translation_placeholders={"link": link, "timeout": f"{err.timeout:g}"},
            )
        return UpdateFailed(
            translation_domain=DOMAIN,
            translation_key="cannot_reach",
            translation_placeholders={"link": link, "error": redact(str(err), self.link)},
        )

    @override
    async def _async_update_data(self) -> DalyData:
        # Called right after Home Assistant noted whether the previous refresh succeeded.
        self._failing = not self.last_update_success
        # The repairs name the battery type as its select shows it, in Home Assistant's language
        # now: the first poll runs before the platforms load the entity translations, and a
        # language change loads none of this integration's. Once per language: the call copies
        # every entity translation of the integration, which is not free on every poll.
        if (language := self.hass.config.language) != self._translations_loaded:
            await async_get_translations(self.hass, language, "entity", {DOMAIN})
            self._translations_loaded = language
        async with self._busy:
            if self._released_until is not None:
                return self._while_released()
            return await self._poll()

    async def _poll(self) -> DalyData:
        read_settings = self._settings is None or self._settings_due or self._polls % self.settings_every == 0
        try:
            poll = await self.client.poll(settings=read_settings)
        except DalyError as err:
            self._record(err)
            # Answers that are never usable (bad CRC, noise, the wrong frames) are no answers.
            self._report(self.checks.poll_failed())
            if isinstance(err, DalyTimeoutError | DalyConnectionError):
                raise self._cannot_reach(err) from err
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="bad_answer",
                translation_placeholders={
                    "link": redact(self.client.transport.description, self.link),
                    "error": redact(str(err), self.link),
                },
            ) from err
        self._polls += 1
        self._record(None)
        if poll.settings is not None:
            self._settings = poll.settings
            self._settings_due = False
        assert self._settings is not None
        now = time.monotonic()
        self._report(self.checks.poll_answered(poll.status, self._settings, now))
        self._observe(poll.status, self._settings, now)
        return DalyData(poll.status, self._settings)

    @callback
    @override
    def _async_refresh_finished(self) -> None:
        """Tell the entities of every failed poll, not only of the first of a run.

        Home Assistant's coordinator stays quiet after a failed refresh that follows a failed
        one; the link's counters, its last error, the signal and the pack check change with
        each, and are what shows the outage.
        """
        if self._failing and not self.last_update_success:
            self.async_update_listeners()

    @property
    def findings(self) -> Findings:
        """What the pack checks found after the latest poll."""
        return self.checks.findings

    @property
    def _issue_target(self) -> IssueTarget:
        """The entry the repair issues belong to, as plain data."""
        entry = self.config_entry
        return IssueTarget(entry.entry_id, entry.title, self.link, self._issue_tracker)

    def _report(self, findings: Findings) -> None:
        """Raise or clear the repair issues from the findings of this poll."""
        async_update_issues(self.hass, self._issue_target, findings, clear=self.checks.judged)

    # --- pack insights (insights.py, insights_store.py) ---------------------------------------
    # Kept apart from the rest of the coordinator: set up with it, fed once per answered poll.

    def _init_insights(self) -> None:
        """The entry's insights: loaded in ``_async_setup``, saved on unload and at stop."""
        entry = self.config_entry
        self.insights = PackInsights(self.hass, entry.entry_id)
        #: What the "not keeping up" issue last said (``_verdict_key``); unset until the first poll.
        self._verdict_shown: tuple[object, ...] | None = None
        entry.async_on_unload(self.insights.async_save)
        entry.async_on_unload(self.hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, self.insights.async_stop))

    def _observe(self, status: Status, settings: Settings, now: float) -> None:
        """Fold the poll into the insights; raise or clear "not keeping up" when the verdict changes."""
        self.insights.observe(status, settings, now)
        verdict = self.insights.answers.not_keeping_up
        threshold = self.insights.insights.rising_mv_per_day
        said = _verdict_key(verdict, threshold)
        if said == self._verdict_shown:
            return
        self._verdict_shown = said
        async_update_not_keeping_up(self.hass, self._issue_target, verdict, threshold=threshold)

    # --- end of pack insights -----------------------------------------------------------------

    async def async_survey(self) -> None:
        """Survey the module's registers once and keep the result.

        Polls and writes go on between the survey's requests (the client takes one request at a
        time), so a module that answers slowly or badly does not hold them; the survey itself is
        bounded in time (``SURVEY_TIME_LIMIT``), and its result says what was left out.
        Raises a translated ``HomeAssistantError`` when the module does not answer (asleep, out of
        reach) or cannot be surveyed; the last survey is then kept.
        """
        self._refuse_while_released()
        try:
            ranges = await self.client.survey()
        except DalyError as err:
            no_answer = isinstance(err, DalyTimeoutError | DalyConnectionError)
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="survey_no_answer" if no_answer else "survey_failed",
                translation_placeholders={"error": redact(str(err), self.link)},
            ) from err
        self.last_survey = Survey(dt_util.utcnow(), ranges)

    async def async_read_raw(self) -> dict[int, int]:
        """A raw register dump read now (diagnostics).

        Like a poll: one at a time with polls and writes, and never while the dongle is left to
        the phone app (``DongleReleasedError``). Raises ``DalyError`` when the module does not answer.
        """
        async with self._busy:
            self._refuse_while_released()
            return await self.client.read_raw()

    async def async_write(
        self,
        setting: Writable,
        value: float | int | bool | str,
        *,
        name: str | None = None,
        show: Callable[[object], str] = str,
    ) -> None:
        """Write one setting through the client's verified write, then refresh.

        ``name`` and ``show`` say the setting and its values the way its entity shows them
        (translated name, the entity's unit or option label) in the errors raised.
        """
        name = name or setting.register.key
        async with self._busy:
            self._refuse_while_released()
            try:
                result: DecodedValue = await self.client.write_setting(setting.register, value)
            except ValueOutOfRangeError as err:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="value_out_of_range",
                    translation_placeholders={"setting": name, "value": show(value), "reason": err.reason},
                ) from err
            except DalyError as err:
                # The module may have taken the value although its answers were lost: re-read the
                # settings at the next poll instead of showing the old value until the Nth one.
                self._settings_due = True
                error: DalyError | None = err
            else:
                error = None
                LOGGER.debug("wrote %s = %s", setting.register.key, result)
                self._show_written(setting, result)
                self._settings_due = True  # the refresh below confirms it
        if isinstance(error, WriteNotAcceptedError):
            await self.async_request_refresh()  # show what the module really holds
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="write_not_accepted",
                translation_placeholders={"setting": name, "value": show(value), "actual": show(error.actual)},
            ) from error
        if error is not None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="write_failed",
                translation_placeholders={"setting": name, "error": str(error)},
            ) from error
        await self.async_request_refresh()

    def _show_written(self, setting: Writable, result: DecodedValue) -> None:
        """Show a verified value at once, in the data and in the settings a poll reuses.

        Entities exist only once the first refresh has succeeded, so ``self.data`` is set.
        """
        status, settings = setting.apply(self.data.status, self.data.settings, result)
        if settings is not self.data.settings:
            self._settings = settings
        self.async_set_updated_data(DalyData(status, settings))

    # --- the phone app's window: the dongle left alone for a while (Bluetooth) ---------------

    @property
    def released_until(self) -> datetime | None:
        """Until when the dongle is left to the phone app, None while Home Assistant holds it."""
        return self._released_until

    async def async_release_dongle(self) -> None:
        """Leave the dongle to the phone app for ``RELEASE_WINDOW``, from now (again if it is).

        No poll, write, survey or diagnostics read touches the link until the window ends; a poll then follows at
        once. The link is closed now, also when it is kept open between polls: the dongle takes
        one client at a time. (A register survey, whose requests open the link on their own, is
        never under way here: the buttons' platform takes one press at a time.)
        """
        if self._unsub_release is not None:
            self._unsub_release()
        self._released_until = dt_util.utcnow() + RELEASE_WINDOW
        self._unsub_release = async_track_point_in_utc_time(self.hass, self._async_window_over, self._released_until)
        self.async_update_listeners()
        async with self._busy:  # a poll or write under way ends first
            await self.client.transport.close()

    async def async_take_back_dongle(self) -> None:
        """End the phone app's window now and poll at once; nothing happens outside a window."""
        if self._released_until is not None:
            await self._async_window_over(dt_util.utcnow())

    async def _async_window_over(self, _now: datetime) -> None:
        if self._unsub_release is not None:
            self._unsub_release()
        self._released_until = self._unsub_release = None
        await self.async_refresh()

    def _while_released(self) -> DalyData:
        """A refresh during the window: nothing is read, nothing counts, and nothing changes.

        Entities keep what they show: the last data, or unavailable when the polls before the
        window failed (raising again is quiet: Home Assistant logs only the first failure).
        """
        assert self._released_until is not None
        if self.last_update_success:
            return self.data
        raise UpdateFailed(
            translation_domain=DOMAIN,
            translation_key="dongle_released",
            translation_placeholders={"until": _shown(self._released_until)},
        )

    def _refuse_while_released(self) -> None:
        """Raise the translated error of an action that needs the link during the window.

        Every action on the link but the poll (``_while_released``) passes here: a write, the
        survey, the diagnostics' read.
        """
        if self._released_until is not None:
            raise DongleReleasedError(self._released_until)


def _verdict_key(verdict: NotKeepingUp | None, threshold: float) -> tuple[object, ...]:
    """What the "not keeping up" issue says of ``verdict``: all but the trend, which moves daily."""
    if verdict is None:
        return ()
    return (verdict.causes, verdict.cell, verdict.days, threshold)
