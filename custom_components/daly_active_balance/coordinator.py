"""The data update coordinator: polls the module, runs the pack checks, keeps the repairs current."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
import time
from typing import Any, override

from homeassistant.components import bluetooth
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_ADDRESS, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.loader import async_get_integration

from .checks import Findings, PackChecks
from .const import (
    CONF_CONNECTION,
    CONF_KEEP_CONNECTED,
    CONF_SETTINGS_EVERY,
    CONF_UPDATE_INTERVAL,
    CONNECTION_BLE,
    DEFAULT_KEEP_CONNECTED,
    DEFAULT_SETTINGS_EVERY,
    DEFAULT_UPDATE_INTERVAL,
    DOMAIN,
    LOGGER,
)
from .issues import IssueTarget, async_update_issues
from .protocol.client import DalyClient
from .protocol.errors import (
    ConnectTimeoutError,
    DalyConnectionError,
    DalyError,
    DalyTimeoutError,
    ValueOutOfRangeError,
    WriteNotAcceptedError,
)
from .protocol.models import Identity, Settings, Status
from .protocol.registers import DecodedValue
from .protocol.transport import SerialTransport, Transport
from .protocol.transport_ble import BleTransport
from .writes import Writable

type DalyConfigEntry = ConfigEntry[DalyCoordinator]


@dataclass(frozen=True, slots=True)
class DalyData:
    """What the entities read: the latest status and settings."""

    status: Status
    settings: Settings


def entry_link(data: Mapping[str, Any]) -> str:
    """The Bluetooth address or the serial port / URL a config entry's data connects to."""
    return str(data[CONF_ADDRESS] if data.get(CONF_CONNECTION) == CONNECTION_BLE else data[CONF_PORT])


def create_transport(hass: HomeAssistant, data: dict[str, object], *, keep_connected: bool = True) -> Transport:
    """The transport a config entry's data describes."""
    link = entry_link(data)
    if data.get(CONF_CONNECTION) == CONNECTION_BLE:
        return BleTransport(
            lambda: bluetooth.async_ble_device_from_address(hass, link, connectable=True),
            keep_connected=keep_connected,
        )
    return SerialTransport(link)


class DalyCoordinator(DataUpdateCoordinator[DalyData]):
    """Polls one module: status every interval, settings every Nth poll and after writes."""

    config_entry: DalyConfigEntry

    def __init__(self, hass: HomeAssistant, entry: DalyConfigEntry, client: DalyClient) -> None:
        """Set up from the entry's options."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"DALY balancer {client.transport.description}",
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
        #: The pack checks' memory and latest findings: the repair issues and the pack-check
        #: entities read the same ones.
        self.checks = PackChecks()
        self._issue_tracker = ""
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

    def apply_options(self) -> None:
        """Apply the entry's options without a reload."""
        options = self.config_entry.options
        self.update_interval = timedelta(seconds=options.get(CONF_UPDATE_INTERVAL, DEFAULT_UPDATE_INTERVAL))
        self.settings_every: int = options.get(CONF_SETTINGS_EVERY, DEFAULT_SETTINGS_EVERY)
        transport = self.client.transport
        if isinstance(transport, BleTransport):
            transport.keep_connected = options.get(CONF_KEEP_CONNECTED, DEFAULT_KEEP_CONNECTED)

    @override
    async def _async_setup(self) -> None:
        """Read who the module is once (nothing is ever written during setup)."""
        self._issue_tracker = str((await async_get_integration(self.hass, DOMAIN)).issue_tracker)
        try:
            self.identity = await self.client.read_identity()
        except DalyError as err:
            raise self._cannot_reach(err) from err

    def _cannot_reach(self, err: DalyError) -> UpdateFailed:
        """The failure of a poll or setup the module did not answer, naming the cause."""
        link = self.client.transport.description
        if isinstance(err, ConnectTimeoutError):
            return UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="connect_timeout",
                translation_placeholders={"link": link, "timeout": f"{err.timeout:g}"},
            )
        return UpdateFailed(
            translation_domain=DOMAIN,
            translation_key="cannot_reach",
            translation_placeholders={"link": link, "error": str(err)},
        )

    @override
    async def _async_update_data(self) -> DalyData:
        async with self._busy:
            return await self._poll()

    async def _poll(self) -> DalyData:
        read_settings = self._settings is None or self._settings_due or self._polls % self.settings_every == 0
        try:
            poll = await self.client.poll(settings=read_settings)
        except (DalyTimeoutError, DalyConnectionError) as err:
            before = self.checks.findings
            self._report(self.checks.poll_failed())
            if self.checks.findings != before:
                # Listeners hear only of the first failed poll of a run: tell them here, the
                # pack check shows that the module stopped answering.
                self.async_update_listeners()
            raise self._cannot_reach(err) from err
        except DalyError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="bad_answer",
                translation_placeholders={"link": self.client.transport.description, "error": str(err)},
            ) from err
        self._polls += 1
        if poll.settings is not None:
            self._settings = poll.settings
            self._settings_due = False
        assert self._settings is not None
        self._report(self.checks.poll_answered(poll.status, self._settings, time.monotonic()))
        return DalyData(poll.status, self._settings)

    @property
    def findings(self) -> Findings:
        """What the pack checks found after the latest poll."""
        return self.checks.findings

    def _report(self, findings: Findings) -> None:
        """Raise or clear the repair issues from the findings of this poll."""
        entry = self.config_entry
        target = IssueTarget(entry.entry_id, entry.title, self.link, self._issue_tracker)
        async_update_issues(self.hass, target, findings)

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
            try:
                result: DecodedValue = await self.client.write_setting(setting.register.key, value)
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
