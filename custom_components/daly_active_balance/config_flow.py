"""Config flow: find the module over Bluetooth or a serial line, and prove it answers.

Every path talks to the module (reads its cells, versions and settings) before an entry is
created; nothing is written. Errors are specific: the port cannot be opened, nothing answers,
the answer is not from a DALY balancer, or the module stopped answering part-way (timeout).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any, cast, override

from homeassistant.components import usb
from homeassistant.components.bluetooth import (
    BluetoothServiceInfoBleak,
    async_discovered_service_info,
    async_last_service_info,
)
from homeassistant.components.bluetooth.match import ble_device_matches
from homeassistant.config_entries import (
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_ADDRESS, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import CONNECTION_BLUETOOTH, format_mac
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
from homeassistant.loader import BluetoothMatcherOptional, async_get_integration
import probatio

from aiodalybalancer.client import DalyClient, ProbeResult
from aiodalybalancer.errors import (
    BadAnswerError,
    ConnectTimeoutError,
    DalyConnectionError,
    DalyError,
    DalyTimeoutError,
    NotABalancerError,
)
from aiodalybalancer.registers import SLEEP_NEVER

from .const import (
    CONF_CONNECTION,
    CONF_KEEP_CONNECTED,
    CONF_NOT_KEEPING_UP_DAYS,
    CONF_NOT_KEEPING_UP_TREND,
    CONF_SETTINGS_EVERY,
    CONF_UPDATE_INTERVAL,
    CONNECTION_BLE,
    CONNECTION_SERIAL,
    DEFAULT_KEEP_CONNECTED,
    DEFAULT_SETTINGS_EVERY,
    DEFAULT_UPDATE_INTERVAL,
    DOMAIN,
    LOGGER,
    MAX_NOT_KEEPING_UP_DAYS,
    MAX_NOT_KEEPING_UP_TREND,
    MAX_SETTINGS_EVERY,
    MAX_UPDATE_INTERVAL,
    MIN_NOT_KEEPING_UP_DAYS,
    MIN_NOT_KEEPING_UP_TREND,
    MIN_UPDATE_INTERVAL,
    PROBE_TIMEOUT,
)
from .identity import async_adopt_ids
from .insights import DEFAULT_RISING_DAYS, DEFAULT_RISING_MV_PER_DAY
from .link import create_transport
from .ports import InvalidPortError, canonical_port, esphome_entry_id, port_id, port_label

if TYPE_CHECKING:
    # Annotations only: the flow runs without the coordinator (it probes through ``link``).
    from .coordinator import DalyConfigEntry

_MAC = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


class ProbeError(Exception):
    """The module could not be read; ``key`` is the translated error."""

    def __init__(self, key: str) -> None:
        """Keep the translation key."""
        super().__init__(key)
        self.key = key


async def async_probe(hass: HomeAssistant, data: dict[str, Any]) -> ProbeResult:
    """Open the link described by ``data``, read the module once, close the link."""
    client = DalyClient(create_transport(hass, data, keep_connected=False))
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            return await client.probe()
    except ConnectTimeoutError as err:
        LOGGER.debug("%s", err)
        raise ProbeError("connect_timeout") from err
    except DalyConnectionError as err:
        LOGGER.debug("cannot open %s: %s", client.transport.description, err)
        raise ProbeError("not_found" if data[CONF_CONNECTION] == CONNECTION_BLE else "cannot_open") from err
    except NotABalancerError as err:
        raise ProbeError("not_balancer") from err
    except BadAnswerError as err:
        LOGGER.debug("unusable answer from %s: %s", client.transport.description, err)
        raise ProbeError("bad_answer") from err
    except (DalyTimeoutError, TimeoutError) as err:
        # Silence from the start means nothing answers; silence after answers is a timeout. The
        # protocol family is learnt from the first answer, so it tells the two apart even when
        # the probe's own time budget ran out while a request was still waiting.
        answered = client.family is not None
        raise ProbeError("timeout" if answered else "no_answer") from err
    except DalyError as err:
        LOGGER.debug("unexpected answer from %s: %s", client.transport.description, err)
        raise ProbeError("not_balancer") from err
    finally:
        await client.close()


def normalize_port(port: str) -> str:
    """The canonical spelling of a device path or bridge URL; ``ProbeError('invalid_port')`` if not one."""
    try:
        return canonical_port(port)
    except InvalidPortError as err:
        raise ProbeError("invalid_port") from err


def normalize_address(address: str) -> str:
    """Upper-case ``AA:BB:…``; raise ``ProbeError('invalid_address')`` when malformed."""
    address = address.strip().upper().replace("-", ":")
    if not _MAC.fullmatch(address):
        raise ProbeError("invalid_address")
    return address


def _title(probe: ProbeResult, where: str) -> str:
    """The entry's and the device's name: what the module is, and where it is reached."""
    return f"DALY balancer {probe.status.cell_count}S ({where})"


_TITLE = re.compile(r"DALY balancer \d+S \((?P<where>.*)\)")


def _dongle_label(address: str, name: str | None) -> str:
    """A Bluetooth module's part of its title: the dongle's name, the address in it shortened.

    DALY dongles advertise ``DL-`` + the address in hex (``DL-401710015C9B`` → ``DL-…5C9B``); a
    renamed dongle keeps its own name; without a name, the end of the address (``…5C9B``).
    """
    plain = address.replace(":", "").upper()
    tail = f"…{plain[-4:]}"
    if not name or _MAC.fullmatch(name.upper()):
        return tail
    return re.sub(re.escape(plain), tail, name, flags=re.IGNORECASE)


def _serial_label(hass: HomeAssistant, port: str) -> str:
    """A wired module's part of its title: its port, host:port, or ESPHome device and port."""
    entry_id = esphome_entry_id(port)
    entry = hass.config_entries.async_get_entry(entry_id) if entry_id else None
    return port_label(port, entry.title if entry else None)


def _ble_label(hass: HomeAssistant, address: str) -> str:
    """A Bluetooth module's part of its title, from the name its dongle was last seen with."""
    seen = async_last_service_info(hass, address, connectable=True)
    return _dongle_label(address, seen.name if seen else None)


def _titled_by_the_flow(hass: HomeAssistant, entry: DalyConfigEntry) -> bool:
    """Whether the entry's title is the one the flow gave it for its link (not the user's own)."""
    if (titled := _TITLE.fullmatch(entry.title)) is None:
        return False
    where = titled["where"]
    if entry.data[CONF_CONNECTION] == CONNECTION_BLE:
        # A dongle out of reach has no name to compare with; the flow's label of one that
        # advertises its address ends in the address's tail.
        address = entry.data[CONF_ADDRESS]
        return where == _ble_label(hass, address) or where.endswith(_dongle_label(address, None))
    return where == _serial_label(hass, entry.data[CONF_PORT])


class DalyConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a DALY Smart Active Balance Module."""

    VERSION = 1
    #: 2: serial entries store the canonical port and are identified by ``ports.port_id``.
    #: 3: ``tcp://`` stored as ``socket://``, host names identified in IDNA, and the registry of
    #: an entry an earlier release split on reconfigure joined (``__init__.async_migrate_entry``).
    MINOR_VERSION = 3

    def __init__(self) -> None:
        """Start empty."""
        self._discovery: BluetoothServiceInfoBleak | None = None

    @staticmethod
    @override
    @callback
    def async_get_options_flow(config_entry: DalyConfigEntry) -> DalyOptionsFlow:
        return DalyOptionsFlow()

    def _module_entry(self, probe: ProbeResult, this: DalyConfigEntry | None = None) -> DalyConfigEntry | None:
        """The entry (other than ``this``) that has the probed module already, known by its serial number.

        A module without one (the captured unit's is empty) cannot be told from another.
        """
        serial = probe.identity.serial_number
        if not serial:
            return None
        devices = dr.async_get(self.hass)
        for entry in self._async_current_entries(include_ignore=False):
            if this is not None and entry.entry_id == this.entry_id:
                continue
            if any(d.serial_number == serial for d in dr.async_entries_for_config_entry(devices, entry.entry_id)):
                return entry
        return None

    def _abort_module_configured(self, other: DalyConfigEntry) -> ConfigFlowResult:
        """Refuse a second entry for one module: both would poll it, one link would lose."""
        return self.async_abort(reason="module_already_configured", description_placeholders={"title": other.title})

    # --- Bluetooth discovery ---------------------------------------------------------------

    async def async_step_bluetooth(self, discovery_info: BluetoothServiceInfoBleak) -> ConfigFlowResult:
        """A dongle matching the manifest's matchers was seen."""
        await self.async_set_unique_id(format_mac(discovery_info.address).upper())
        self._abort_if_unique_id_configured()
        self._discovery = discovery_info
        self.context["title_placeholders"] = {"name": discovery_info.name}
        return await self.async_step_bluetooth_confirm()

    async def async_step_bluetooth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask before connecting (the phone app must be closed: the dongle takes one link)."""
        assert self._discovery is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: self._discovery.address.upper()}
            try:
                probe = await async_probe(self.hass, data)
            except ProbeError as err:
                errors["base"] = err.key
            else:
                if (other := self._module_entry(probe)) is not None:
                    return self._abort_module_configured(other)
                label = _dongle_label(self._discovery.address, self._discovery.name)
                return self.async_create_entry(title=_title(probe, label), data=data)
        self._set_confirm_only()
        return self.async_show_form(
            step_id="bluetooth_confirm",
            description_placeholders={"name": self._discovery.name},
            errors=errors,
        )

    # --- user ------------------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose how the module is connected."""
        return self.async_show_menu(step_id="user", menu_options=["ble", "serial"])

    async def _discovered(self) -> list[SelectOptionDict]:
        integration = await async_get_integration(self.hass, DOMAIN)
        matchers = integration.manifest.get("bluetooth", [])
        configured = self._async_current_ids(include_ignore=False)
        options: list[SelectOptionDict] = []
        for info in async_discovered_service_info(self.hass, connectable=True):
            address = info.address.upper()
            if address in configured or not any(
                ble_device_matches(cast(BluetoothMatcherOptional, m), info) for m in matchers
            ):
                continue
            options.append(SelectOptionDict(value=address, label=f"{info.name} ({address})"))
        return options

    async def async_step_ble(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick a discovered dongle, or type the address of a renamed or silent one."""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                address = normalize_address(user_input[CONF_ADDRESS])
                await self.async_set_unique_id(address, raise_on_progress=False)
                self._abort_if_unique_id_configured()
                data = {CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: address}
                probe = await async_probe(self.hass, data)
            except ProbeError as err:
                errors["base"] = err.key
            else:
                if (other := self._module_entry(probe)) is not None:
                    return self._abort_module_configured(other)
                return self.async_create_entry(title=_title(probe, _ble_label(self.hass, address)), data=data)
        schema = probatio.Schema(
            {
                probatio.Required(CONF_ADDRESS): SelectSelector(
                    SelectSelectorConfig(
                        options=await self._discovered(), custom_value=True, mode=SelectSelectorMode.DROPDOWN
                    )
                )
            }
        )
        return self.async_show_form(
            step_id="ble", data_schema=self.add_suggested_values_to_schema(schema, user_input), errors=errors
        )

    async def _ports(self) -> list[SelectOptionDict]:
        ports = await usb.async_scan_serial_ports(self.hass)
        return [
            SelectOptionDict(
                value=port.device,
                label=usb.human_readable_device_name(
                    port.device,
                    port.serial_number,
                    port.manufacturer,
                    port.description,
                    getattr(port, "vid", None),
                    getattr(port, "pid", None),
                ),
            )
            for port in ports
        ]

    async def async_step_serial(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick a serial port, or type a device path or a bridge URL."""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                port = normalize_port(user_input[CONF_PORT])
                await self.async_set_unique_id(
                    await self.hass.async_add_executor_job(port_id, port), raise_on_progress=False
                )
                self._abort_if_unique_id_configured()
                data = {CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: port}
                probe = await async_probe(self.hass, data)
            except ProbeError as err:
                errors["base"] = err.key
            else:
                if (other := self._module_entry(probe)) is not None:
                    return self._abort_module_configured(other)
                return self.async_create_entry(title=_title(probe, _serial_label(self.hass, port)), data=data)
        return self.async_show_form(
            step_id="serial",
            data_schema=self.add_suggested_values_to_schema(await self._port_schema(), user_input),
            errors=errors,
        )

    async def _port_schema(self) -> probatio.Schema:
        return probatio.Schema(
            {
                probatio.Required(CONF_PORT): SelectSelector(
                    SelectSelectorConfig(
                        options=await self._ports(), custom_value=True, mode=SelectSelectorMode.DROPDOWN
                    )
                )
            }
        )

    # --- reconfigure -----------------------------------------------------------------------

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Change the address, port or URL of an entry (the module is read before saving)."""
        entry = self._get_reconfigure_entry()
        ble = entry.data[CONF_CONNECTION] == CONNECTION_BLE
        key = CONF_ADDRESS if ble else CONF_PORT
        errors: dict[str, str] = {}
        if user_input is not None:
            unloaded = False
            try:
                if ble:
                    value = unique_id = normalize_address(user_input[key])
                else:
                    value = normalize_port(user_input[key])
                    unique_id = await self.hass.async_add_executor_job(port_id, value)
                if unique_id != entry.unique_id:
                    await self.async_set_unique_id(unique_id)
                    self._abort_if_unique_id_configured()
                data = {**entry.data, key: value}
                # A running entry holds its link (a serial port is locked, a dongle takes one
                # central, many bridges one client), and the module may sit behind the new value
                # too (e.g. /dev/serial/by-id/…): release it for the probe. Unloading also drops
                # the update listener, which would otherwise poll the old link on the data change
                # (Home Assistant refuses an update listener beside async_update_reload_and_abort).
                if entry.state is ConfigEntryState.LOADED:
                    unloaded = await self.hass.config_entries.async_unload(entry.entry_id)
                probe = await async_probe(self.hass, data)
            except ProbeError as err:
                errors["base"] = err.key
                if unloaded:  # back onto the old link while the user corrects the value
                    self.hass.config_entries.async_schedule_reload(entry.entry_id)
            else:
                if (other := self._module_entry(probe, entry)) is not None:
                    if unloaded:
                        self.hass.config_entries.async_schedule_reload(entry.entry_id)
                    return self._abort_module_configured(other)
                if unique_id != entry.unique_id:
                    # The entities' and the device's ids derive from the entry's: they move with
                    # it, or the same module comes back as new entities (``_2``) on a new device.
                    connections = {(CONNECTION_BLUETOOTH, value)} if ble else None
                    async_adopt_ids(self.hass, entry.entry_id, entry.unique_id, unique_id, connections)
                title = entry.title
                if _titled_by_the_flow(self.hass, entry):  # the device's name follows it
                    title = _title(probe, _ble_label(self.hass, value) if ble else _serial_label(self.hass, value))
                return self.async_update_reload_and_abort(entry, unique_id=unique_id, title=title, data=data)
        if ble:
            schema = probatio.Schema({probatio.Required(CONF_ADDRESS): str})
        else:
            schema = await self._port_schema()
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {key: entry.data[key]}),
            errors=errors,
        )


class DalyOptionsFlow(OptionsFlow):
    """Polling, the BLE link, the settings cadence and when the balancer is "not keeping up"."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form; options take effect without a reload."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            interval = int(user_input[CONF_UPDATE_INTERVAL])
            sleep_time = self._sleep_time()
            if sleep_time is not None and interval > sleep_time:
                # The rule the Sleep time number keeps from its side: a module that falls asleep
                # between polls loses each poll's first request.
                errors[CONF_UPDATE_INTERVAL] = "interval_longer_than_sleep"
                placeholders["sleep_time"] = str(sleep_time)
            else:
                return self.async_create_entry(
                    data={
                        **user_input,
                        CONF_UPDATE_INTERVAL: interval,
                        CONF_SETTINGS_EVERY: int(user_input[CONF_SETTINGS_EVERY]),
                        CONF_NOT_KEEPING_UP_TREND: float(user_input[CONF_NOT_KEEPING_UP_TREND]),
                        CONF_NOT_KEEPING_UP_DAYS: int(user_input[CONF_NOT_KEEPING_UP_DAYS]),
                    }
                )
        fields: dict[Any, Any] = {
            probatio.Required(CONF_UPDATE_INTERVAL, default=DEFAULT_UPDATE_INTERVAL): NumberSelector(
                NumberSelectorConfig(
                    min=MIN_UPDATE_INTERVAL,
                    max=MAX_UPDATE_INTERVAL,
                    step=1,
                    unit_of_measurement="s",
                    mode=NumberSelectorMode.BOX,
                )
            ),
            probatio.Required(CONF_SETTINGS_EVERY, default=DEFAULT_SETTINGS_EVERY): NumberSelector(
                NumberSelectorConfig(min=1, max=MAX_SETTINGS_EVERY, step=1, mode=NumberSelectorMode.BOX)
            ),
        }
        if self.config_entry.data[CONF_CONNECTION] == CONNECTION_BLE:
            fields[probatio.Required(CONF_KEEP_CONNECTED, default=DEFAULT_KEEP_CONNECTED)] = BooleanSelector()
        fields[probatio.Required(CONF_NOT_KEEPING_UP_TREND, default=DEFAULT_RISING_MV_PER_DAY)] = NumberSelector(
            NumberSelectorConfig(
                min=MIN_NOT_KEEPING_UP_TREND,
                max=MAX_NOT_KEEPING_UP_TREND,
                step=0.5,
                unit_of_measurement="mV/d",
                mode=NumberSelectorMode.BOX,
            )
        )
        fields[probatio.Required(CONF_NOT_KEEPING_UP_DAYS, default=DEFAULT_RISING_DAYS)] = NumberSelector(
            NumberSelectorConfig(
                min=MIN_NOT_KEEPING_UP_DAYS,
                max=MAX_NOT_KEEPING_UP_DAYS,
                step=1,
                mode=NumberSelectorMode.BOX,
            )
        )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                probatio.Schema(fields), user_input if user_input is not None else self.config_entry.options
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _sleep_time(self) -> int | None:
        """The sleep time the running module last reported; None when unknown or "never"."""
        entry: DalyConfigEntry = self.config_entry
        if entry.state is not ConfigEntryState.LOADED:
            return None
        settings = entry.runtime_data.settings
        sleep_time = None if settings is None else settings.sleep_time
        return None if sleep_time is None or sleep_time == SLEEP_NEVER else sleep_time
