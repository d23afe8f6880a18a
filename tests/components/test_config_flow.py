"""The config flow against the real simulator.

Serial links are real: the simulator on a pseudo-terminal (a device path) and on a loopback TCP
socket (``socket://127.0.0.1:PORT``). Bluetooth goes through Home Assistant's bluetooth
integration (advertisements injected at its scanner callback, matched against the manifest) and
the stand-in BleakClient bound to a simulator. Only the USB port scan is replaced, since its
answer depends on the machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
import json
import logging
import os
from pathlib import Path
import socket
from typing import Any, override
from unittest.mock import AsyncMock, patch

from homeassistant.components.bluetooth import BluetoothServiceInfoBleak
from homeassistant.components.usb import SerialDevice, USBDevice
from homeassistant.config_entries import (
    SOURCE_BLUETOOTH,
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlowResult,
)
from homeassistant.const import CONF_ADDRESS, CONF_PORT, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import serialx
from serialx.platforms.serial_socket import SocketSerial, SocketSerialTransport

from aiodalybalancer.client import DalyClient
from aiodalybalancer.frames import Direction, ExceptionResponse, Function, ReadRequest
from aiodalybalancer.registers import BY_KEY, SLEEP_NEVER
from aiodalybalancer.stream import D2Framing, FrameStream
from aiodalybalancer.tools.factory import encode_ascii
from aiodalybalancer.tools.simulator import (
    Reply,
    SimulatedBalancer,
    SimulatorConfig,
    SimulatorServer,
    serve_pty,
    serve_tcp,
)
from aiodalybalancer.transport import SerialTransport
from custom_components.daly_active_balance import config_flow
from custom_components.daly_active_balance.const import (
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
    MAX_NOT_KEEPING_UP_DAYS,
    MAX_NOT_KEEPING_UP_TREND,
    MAX_SETTINGS_EVERY,
    MAX_UPDATE_INTERVAL,
    MIN_NOT_KEEPING_UP_DAYS,
    MIN_NOT_KEEPING_UP_TREND,
    MIN_UPDATE_INTERVAL,
)
from custom_components.daly_active_balance.insights import DEFAULT_RISING_DAYS, DEFAULT_RISING_MV_PER_DAY

from .ble_helpers import (
    DALY_ADDRESS,
    DALY_MANUFACTURER_PAYLOAD,
    DALY_NAME,
    inject_advertisement,
    service_info,
    use_standin_dongle,
)
from .unaccepting import unaccepting_port

pytestmark = pytest.mark.usefixtures("socket_enabled", "enable_bluetooth")

MANIFEST = json.loads(
    (Path(__file__).parents[2] / "custom_components" / DOMAIN / "manifest.json").read_text(encoding="utf-8")
)
#: A client answer timeout short enough that silent modules cost well under a second.
SHORT_TIMEOUT = 0.15
#: A timeout that never runs out within a test (pytest-timeout ends a test that would wait on it).
ENDLESS = 3600.0
#: 0x00CF: the balancer's on/off switch; a DALY BMS reads 0xFFFF there (reference §4.6).
BALANCER_SWITCH = BY_KEY["balancer_enabled"].address
OTHER_ADDRESS = "C4:DE:E2:11:22:33"
SERIAL_NUMBER = "DALY2024SN0042"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def entry_unique_id(sim_server: SimulatorServer) -> str:
    """A serial entry's unique id is its URL, as the flow makes it."""
    return sim_server.url


@pytest.fixture
async def mock_setup_entry(hass: HomeAssistant) -> AsyncIterator[AsyncMock]:
    """Entries created by a flow are not set up (the flow is under test, not the setup).

    They are unloaded again while the stand-ins are still in place.
    """
    with (
        patch(f"custom_components.{DOMAIN}.async_setup_entry", return_value=True) as mock,
        patch(f"custom_components.{DOMAIN}.async_unload_entry", return_value=True),
    ):
        yield mock
        await hass.async_block_till_done()
        for entry in hass.config_entries.async_entries(DOMAIN):
            if entry.state is ConfigEntryState.LOADED:
                await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture(params=["pty", "tcp"])
async def link(request: pytest.FixtureRequest, simulator: SimulatedBalancer) -> AsyncIterator[SimulatorServer]:
    """The simulator behind a real serial device path (pty) or a real TCP socket."""
    serve = serve_pty if request.param == "pty" else serve_tcp
    server = await serve(simulator)
    yield server
    await server.close()


@pytest.fixture
def usb_ports() -> Iterator[list[USBDevice | SerialDevice]]:
    """What HA's usb component reports; a test fills the list before opening the serial step."""
    ports: list[USBDevice | SerialDevice] = []
    # Patched where the flow looks it up (``config_flow.usb``), whatever module object that is.
    with patch(f"{config_flow.__name__}.usb.async_scan_serial_ports", AsyncMock(return_value=ports)):
        yield ports


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow's client gives up on an unanswered request after ``SHORT_TIMEOUT`` seconds."""
    defaults = DalyClient.__init__.__kwdefaults__
    assert defaults is not None and "timeout" in defaults
    monkeypatch.setitem(defaults, "timeout", SHORT_TIMEOUT)


# --- helpers ----------------------------------------------------------------------------------


def refused_port() -> int:
    """A loopback TCP port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_answering_after(sim: SimulatedBalancer, answers: int) -> Callable[[], None]:
    """The module answers ``answers`` requests, then goes silent (power lost, cable pulled).

    Returns how to bring it back.
    """
    original = sim.receive
    seen = 0

    def receive(data: bytes) -> list[Any]:
        nonlocal seen
        replies = original(data)
        seen += len(replies)
        if seen >= answers:
            sim.silent = True
        return replies

    sim.receive = receive  # type: ignore[method-assign]

    def restore() -> None:
        del sim.receive
        sim.silent = False

    return restore


def make_bms(sim: SimulatedBalancer) -> None:
    """Make the module look like a DALY BMS: register 0x00CF is not a balancer switch."""
    sim.write_word(BALANCER_SWITCH, 0xFFFF)


def make_balancer(sim: SimulatedBalancer) -> None:
    """Undo ``make_bms`` (the balancer switch reads 'on')."""
    sim.write_word(BALANCER_SWITCH, 1)


def entries(hass: HomeAssistant) -> list[Any]:
    """This integration's config entries."""
    return hass.config_entries.async_entries(DOMAIN)


def form_schema(result: ConfigFlowResult) -> dict[Any, Any]:
    """The fields of a form: marker → validator (selector)."""
    data_schema = result["data_schema"]
    assert data_schema is not None
    return dict(data_schema.schema)


def selector_config(result: ConfigFlowResult, key: str) -> Any:
    """The configuration of a form field's selector."""
    return form_schema(result)[key].config


def suggested(result: ConfigFlowResult, key: str) -> Any:
    """The suggested (pre-filled) value of a form field."""
    for marker in form_schema(result):
        if marker == key:
            return (marker.description or {}).get("suggested_value")
    raise AssertionError(f"{key} is not in the form")


def fields(result: ConfigFlowResult) -> set[str]:
    """The names of a form's fields."""
    return {str(marker) for marker in form_schema(result)}


def select_options(result: ConfigFlowResult, key: str) -> list[dict[str, str]]:
    """The options of a select field."""
    return list(selector_config(result, key)["options"])


async def open_step(hass: HomeAssistant, step: str) -> ConfigFlowResult:
    """Start a user flow and choose ``step`` from the menu."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": step})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step
    assert result["errors"] == {}
    return result


async def submit(hass: HomeAssistant, result: ConfigFlowResult, user_input: dict[str, Any]) -> ConfigFlowResult:
    """Submit a form."""
    return await hass.config_entries.flow.async_configure(result["flow_id"], user_input)


async def add_port(hass: HomeAssistant, port: str) -> ConfigFlowResult:
    """Start a user flow and submit ``port`` in the serial step."""
    return await submit(hass, await open_step(hass, "serial"), {CONF_PORT: port})


async def start_reconfigure(hass: HomeAssistant, entry: ConfigEntry) -> ConfigFlowResult:
    """Open the reconfigure form of an entry a flow created."""
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )


def assert_already_configured(result: ConfigFlowResult, port: str) -> None:
    """The flow for ``port`` stopped: its port has an entry already."""
    assert result["type"] is FlowResultType.ABORT, port
    assert result["reason"] == "already_configured", port


def assert_form_error(result: ConfigFlowResult, step: str, error: str) -> None:
    """The same form is shown again with ``error``."""
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step
    assert result["errors"] == {"base": error}


# --- user menu --------------------------------------------------------------------------------


async def test_user_menu(hass: HomeAssistant) -> None:
    """The user step offers Bluetooth and serial."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert result["menu_options"] == ["ble", "serial"]


# --- serial: success --------------------------------------------------------------------------


@pytest.mark.parametrize("sim_config", [SimulatorConfig(cells=16, seed=1), SimulatorConfig(cells=5, seed=2)])
async def test_serial_typed_port_creates_entry(
    hass: HomeAssistant,
    link: SimulatorServer,
    sim_config: SimulatorConfig,
    simulator: SimulatedBalancer,
    usb_ports: list[USBDevice | SerialDevice],
    mock_setup_entry: AsyncMock,
) -> None:
    """A typed device path or socket:// URL is probed over the real link and becomes the entry."""
    result = await open_step(hass, "serial")
    result = await submit(hass, result, {CONF_PORT: f"  {link.url} "})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # Named after the module and where it is reached: /dev/pts/N as "pts/N", a bridge by host:port.
    where = link.url.removeprefix("socket://") if "://" in link.url else "pts/" + link.url.rsplit("/", 1)[1]
    assert result["title"] == f"DALY balancer {sim_config.cells}S ({where})"
    assert result["data"] == {CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: link.url}
    assert result["result"].unique_id == link.url
    assert result["result"].options == {}
    assert [e.entry_id for e in entries(hass)] == [result["result"].entry_id]
    # The module was really read (cells, identity, settings), and nothing was written.
    assert simulator.stats.requests >= 5
    assert simulator.stats.writes == 0
    await hass.async_block_till_done()
    assert len(mock_setup_entry.mock_calls) == 1


async def test_serial_lists_usb_ports_and_creates_entry_from_one(
    hass: HomeAssistant, usb_ports: list[USBDevice | SerialDevice], mock_setup_entry: AsyncMock
) -> None:
    """The serial step lists HA's USB/serial ports; picking one (here: the simulator's pty) works."""
    server = await serve_pty(SimulatedBalancer(SimulatorConfig(cells=8, seed=3)))
    try:
        usb_ports.extend(
            [
                USBDevice(
                    device=server.url,
                    vid="1A86",
                    pid="7523",
                    serial_number="5678",
                    manufacturer="QinHeng Electronics",
                    description="USB Serial",
                ),
                SerialDevice(device="/dev/ttyS0", serial_number=None, manufacturer=None, description=None),
            ]
        )
        result = await open_step(hass, "serial")
        assert select_options(result, CONF_PORT) == [
            {
                "value": server.url,
                "label": f"USB Serial - {server.url}, s/n: 5678 - QinHeng Electronics - 1A86:7523",
            },
            {"value": "/dev/ttyS0", "label": "/dev/ttyS0, s/n: n/a"},
        ]
        assert selector_config(result, CONF_PORT)["custom_value"] is True
        result = await submit(hass, result, {CONF_PORT: server.url})
    finally:
        await server.close()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"DALY balancer 8S (pts/{server.url.rsplit('/', 1)[1]})"
    assert result["result"].unique_id == server.url


async def test_serial_already_configured(
    hass: HomeAssistant, sim_server: SimulatorServer, simulator: SimulatedBalancer, usb_ports: list[Any]
) -> None:
    """A port that already has an entry aborts before anything is opened."""
    MockConfigEntry(
        domain=DOMAIN, unique_id=sim_server.url, data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: sim_server.url}
    ).add_to_hass(hass)
    result = await open_step(hass, "serial")
    result = await submit(hass, result, {CONF_PORT: sim_server.url})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert simulator.stats.requests == 0
    assert len(entries(hass)) == 1


async def test_same_module_through_a_second_link_is_refused(
    hass: HomeAssistant, simulator: SimulatedBalancer, sim_server: SimulatorServer, usb_ports: list[Any]
) -> None:
    """A module with a serial number that has an entry already is refused through another link
    (two entries would fight over one module); without a serial number nothing tells it apart."""
    serial = BY_KEY["serial_number"]
    for offset, word in enumerate(encode_ascii(SERIAL_NUMBER, serial.count)):
        simulator.write_word(serial.address + offset, word)
    result = await add_port(hass, sim_server.url)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    first = result["result"]
    assert first.state is ConfigEntryState.LOADED
    second_link = await serve_tcp(simulator)
    try:
        result = await add_port(hass, second_link.url)
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "module_already_configured"
        assert result["description_placeholders"] == {"title": first.title}
        assert len(entries(hass)) == 1
        # Reconfiguring the entry onto the second link is the same module: allowed.
        result = await start_reconfigure(hass, first)
        result = await submit(hass, result, {CONF_PORT: second_link.url})
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert first.state is ConfigEntryState.LOADED
        await hass.config_entries.async_unload(first.entry_id)
        await hass.async_block_till_done()
    finally:
        await second_link.close()


async def test_reconfigure_onto_a_module_another_entry_has_is_refused(
    hass: HomeAssistant, simulator: SimulatedBalancer, sim_server: SimulatorServer, usb_ports: list[Any]
) -> None:
    """Reconfiguring an entry onto a link that reaches another entry's module (same serial number) aborts."""
    serial = BY_KEY["serial_number"]
    for offset, word in enumerate(encode_ascii(SERIAL_NUMBER, serial.count)):
        simulator.write_word(serial.address + offset, word)
    result = await add_port(hass, sim_server.url)
    await hass.async_block_till_done()
    first = result["result"]
    other_module = SimulatedBalancer(SimulatorConfig(cells=8, seed=3))
    other_server = await serve_tcp(other_module)
    second_link = await serve_tcp(simulator)
    try:
        result = await add_port(hass, other_server.url)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        second = result["result"]
        result = await start_reconfigure(hass, second)
        result = await submit(hass, result, {CONF_PORT: second_link.url})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "module_already_configured"
        await hass.async_block_till_done()
        assert second.data[CONF_PORT] == other_server.url
        assert second.state is ConfigEntryState.LOADED  # back on its own link
        for entry in (first, second):
            await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    finally:
        await other_server.close()
        await second_link.close()


# --- serial: errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "port",
    [
        "socket://nohost",
        "socket://127.0.0.1:notaport",
        "rfc2217://:4000",
        "http://x",
        "esphome://",
        "esphome-hass://esphome/",
        "esphome-hass://esphome/01JD0CAFE",
        "socket://127.0.0.1:70000",
        "socket://127.0.0.1:0",
        "socket://[::1:8899",
        "socket://[zz]:8899",
        "foo",
        "ttyUSB0",
        "COM",
    ],
)
async def test_serial_malformed_port(
    hass: HomeAssistant,
    sim_server: SimulatorServer,
    simulator: SimulatedBalancer,
    usb_ports: list[Any],
    mock_setup_entry: AsyncMock,
    port: str,
) -> None:
    """A malformed path or URL is refused before anything is opened; the user can correct it."""
    result = await open_step(hass, "serial")
    result = await submit(hass, result, {CONF_PORT: port})
    assert_form_error(result, "serial", "invalid_port")
    assert suggested(result, CONF_PORT) == port
    assert entries(hass) == []
    assert simulator.stats.requests == 0
    result = await submit(hass, result, {CONF_PORT: sim_server.url})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_PORT] == sim_server.url


@pytest.mark.parametrize(
    "port",
    [
        "/dev/ttyDALY-does-not-exist",
        "COM3",
        "socket://127.0.0.1:{refused}",
        "rfc2217://127.0.0.1:{refused}",
    ],
)
async def test_serial_cannot_open(
    hass: HomeAssistant,
    sim_server: SimulatorServer,
    usb_ports: list[Any],
    mock_setup_entry: AsyncMock,
    port: str,
) -> None:
    """A missing device or a bridge that refuses the connection gives ``cannot_open``."""
    port = port.format(refused=refused_port())
    result = await open_step(hass, "serial")
    result = await submit(hass, result, {CONF_PORT: port})
    assert_form_error(result, "serial", "cannot_open")
    assert entries(hass) == []
    result = await submit(hass, result, {CONF_PORT: sim_server.url})
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (" /dev/ttyUSB0 ", "/dev/ttyUSB0"),
        ("/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0", "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"),
        ("COM3", "COM3"),
        ("com12", "COM12"),
        ("socket://192.0.2.10:8899", "socket://192.0.2.10:8899"),
        ("socket://192.0.2.10:08899/", "socket://192.0.2.10:8899"),
        ("TCP://Bridge.Local:4000", "socket://bridge.local:4000"),  # serialx opens both alike
        ("rfc2217://bridge.local:4000", "rfc2217://bridge.local:4000"),
        ("socket://[0:0::1]:8899", "socket://[::1]:8899"),
        # ESPHome serial proxies: the URL's details belong to serialx, only the host is required.
        ("esphome://proxy.local", "esphome://proxy.local"),
        ("esphome://proxy.local:6053?port_name=uart1", "esphome://proxy.local?port_name=uart1"),
        (
            "esphome://proxy.local:6054?port_name=uart1&key=a%2Bb",
            "esphome://proxy.local:6054?port_name=uart1&key=a%2Bb",
        ),
        # As Home Assistant's ESPHome integration lists a proxy (entry id in the path).
        ("esphome-hass://esphome/01JD0CAFE?port_name=uart1", "esphome-hass://esphome/01JD0CAFE?port_name=uart1"),
    ],
)
def test_normalize_port_accepts(port: str, expected: str) -> None:
    """Device paths, COM ports and the bridge URL schemes are accepted in one spelling.

    (An ``esphome://`` URL is not driven through the flow here: serialx's ESPHome client needs a
    real ESPHome API peer, and its error translation depends on how aioesphomeapi was imported.)
    """
    assert config_flow.normalize_port(port) == expected


# --- serial: ports Home Assistant lists, and one port spelt many ways -----------------------


@pytest.fixture
def esphome_proxies(sim_server: SimulatorServer) -> Iterator[dict[str, str]]:
    """``esphome-hass://`` URLs, opened the way serialx opens any URL: through its handler.

    Home Assistant's ESPHome integration registers a serialx handler for the scheme that reaches
    the proxy over the device's API connection. This one stands in for it at the serialx
    boundary: it carries each URL in the returned map (proxy URL → socket URL) to a real TCP
    link, so the flow, the transport and serialx's dispatch run as they do in Home Assistant.
    """
    targets: dict[str, str] = {}

    class ProxyTransport(SocketSerialTransport):
        @override
        async def _connect(self, *, path: str, **kwargs: Any) -> None:  # type: ignore[override]
            await super()._connect(path=targets[path], **kwargs)

    unregister = serialx.register_uri_handler(
        scheme="esphome-hass://",
        unique_scheme="esphome-hass-daly-test://",
        sync_cls=SocketSerial,
        async_transport_cls=ProxyTransport,
        weight=100,
    )
    try:
        yield targets
    finally:
        unregister()


async def test_serial_esphome_proxy_from_the_list_is_probed(
    hass: HomeAssistant,
    simulator: SimulatedBalancer,
    sim_server: SimulatorServer,
    esphome_proxies: dict[str, str],
    usb_ports: list[USBDevice | SerialDevice],
    mock_setup_entry: AsyncMock,
) -> None:
    """An ESPHome serial proxy as Home Assistant lists it is accepted, probed and stored as listed."""
    proxy = "esphome-hass://esphome/01JD0CAFE0000000000000000?port_name=uart_daly"
    esphome_proxies[proxy] = sim_server.url
    usb_ports.append(
        SerialDevice(device=proxy, serial_number="aabbccddeeff-uart_daly", manufacturer="Espressif", description="x")
    )
    result = await open_step(hass, "serial")
    assert [option["value"] for option in select_options(result, CONF_PORT)] == [proxy]
    result = await submit(hass, result, {CONF_PORT: proxy})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: proxy}
    assert result["result"].unique_id == proxy
    assert simulator.stats.requests >= 5  # the module was read through the proxy's handler


def _spellings(url: str) -> list[str]:
    """Other ways to write the loopback URL ``url`` (``socket://127.0.0.1:PORT``)."""
    port = url.rpartition(":")[2]
    return [
        f"{url}/",
        f"socket://127.0.0.1:0{port}",
        f"socket://localhost:{port}",
        f"SOCKET://127.0.0.1:{port}",
        f"Socket://LocalHost:00{port}/",
        # serialx opens tcp:// as socket://: the same bridge, which takes one client.
        f"tcp://127.0.0.1:{port}",
        f"TCP://localhost:{port}/",
    ]


async def test_serial_same_bridge_spelt_differently_is_configured(
    hass: HomeAssistant,
    simulator: SimulatedBalancer,
    sim_server: SimulatorServer,
    usb_ports: list[Any],
    mock_setup_entry: AsyncMock,
) -> None:
    """A trailing slash, a leading zero, ``localhost`` or upper case do not make a second entry."""
    result = await open_step(hass, "serial")
    result = await submit(hass, result, {CONF_PORT: sim_server.url})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    requests = simulator.stats.requests
    for spelling in _spellings(sim_server.url):
        assert_already_configured(await add_port(hass, spelling), spelling)
    assert len(entries(hass)) == 1
    assert simulator.stats.requests == requests  # nothing was opened again


@pytest.mark.parametrize("index", range(7))
async def test_serial_url_stored_in_canonical_spelling(
    hass: HomeAssistant, sim_server: SimulatorServer, usb_ports: list[Any], mock_setup_entry: AsyncMock, index: int
) -> None:
    """Each spelling reaches the module (``SOCKET://`` too) and is stored in one spelling."""
    result = await open_step(hass, "serial")
    result = await submit(hass, result, {CONF_PORT: _spellings(sim_server.url)[index]})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_PORT] == sim_server.url
    assert result["result"].unique_id == sim_server.url


def serial_by_id_in(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``/dev/serial/by-id`` is ``folder`` (which may not exist) for whoever reads it; other paths are left alone."""
    real_isdir, real_scandir, real_listdir = os.path.isdir, os.scandir, os.listdir

    def moved(path: Any) -> Any:
        return str(folder) if os.fspath(path) == "/dev/serial/by-id" else path

    monkeypatch.setattr(os.path, "isdir", lambda path: real_isdir(moved(path)))
    monkeypatch.setattr(os, "scandir", lambda path=".": real_scandir(moved(path)))
    monkeypatch.setattr(os, "listdir", lambda path=".": real_listdir(moved(path)))


@pytest.mark.parametrize("by_id", [True, False], ids=["by-id", "no-by-id"])
async def test_serial_device_link_and_target_are_one_port(
    hass: HomeAssistant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    simulator: SimulatedBalancer,
    usb_ports: list[Any],
    mock_setup_entry: AsyncMock,
    by_id: bool,
) -> None:
    """A link to a device and the device itself are one port, identified by the ``by-id`` link
    to the device when there is one, else by the device (here without a ``by-id`` folder)."""
    server = await serve_pty(simulator)
    try:
        stable = tmp_path / "by-id" / "usb-1a86_USB_Serial-if00-port0"
        if by_id:
            stable.parent.mkdir()
            stable.symlink_to(server.url)
        serial_by_id_in(monkeypatch, stable.parent)
        link = tmp_path / "daly"
        link.symlink_to(server.url)

        result = await add_port(hass, str(link))
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"][CONF_PORT] == str(link)  # the user's choice is kept
        assert result["result"].unique_id == (str(stable) if by_id else server.url)
        for path in (server.url, str(stable)) if by_id else (server.url,):
            assert_already_configured(await add_port(hass, path), path)
    finally:
        await server.close()


async def test_serial_url_credentials_stay_out_of_ids_titles_and_logs(
    hass: HomeAssistant,
    sim_server: SimulatorServer,
    usb_ports: list[Any],
    mock_setup_entry: AsyncMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A URL's key and password are kept to connect, but are no part of the unique id or the
    title, and no log line shows them (also when the port cannot be opened)."""
    caplog.set_level(logging.DEBUG)
    key, password = "c2VjcmV0LWtleQ==", "hunter2-DALY"
    result = await open_step(hass, "serial")
    refused = f"socket://127.0.0.1:{refused_port()}?key={key}"
    result = await submit(hass, result, {CONF_PORT: refused})
    assert_form_error(result, "serial", "cannot_open")
    url = f"{sim_server.url}?port_name=uart1&key={key}&password={password}"
    result = await submit(hass, result, {CONF_PORT: url})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_PORT] == url
    assert result["result"].unique_id == f"{sim_server.url}?port_name=uart1"
    assert key not in result["title"]
    assert password not in result["title"]
    assert key not in caplog.text
    assert password not in caplog.text
    assert "?key=**REDACTED**" in caplog.text  # the failure is logged, readable but without the key


# --- serial: a bridge that never accepts the connection ----------------------------------------


@pytest.fixture
def short_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a serial link gives up after ``SHORT_TIMEOUT`` seconds."""
    defaults = SerialTransport.__init__.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "connect_timeout", SHORT_TIMEOUT)


@pytest.mark.usefixtures("short_connect")
@pytest.mark.parametrize("scheme", ["socket", "rfc2217"])
async def test_serial_bridge_that_never_accepts(
    hass: HomeAssistant,
    sim_server: SimulatorServer,
    usb_ports: list[Any],
    mock_setup_entry: AsyncMock,
    caplog: pytest.LogCaptureFixture,
    scheme: str,
) -> None:
    """A TCP connect that never completes, or an RFC 2217 negotiation nobody answers (a raw
    socket), is named as such (not "nothing answered"), after one bounded attempt."""
    caplog.set_level(logging.DEBUG, logger=f"custom_components.{DOMAIN}")
    with unaccepting_port() as port:
        # The simulator is a raw TCP bridge: it accepts the connection but speaks no RFC 2217.
        url = f"socket://127.0.0.1:{port}" if scheme == "socket" else f"rfc2217://127.0.0.1:{sim_server.port}"
        result = await open_step(hass, "serial")
        result = await submit(hass, result, {CONF_PORT: url})
    assert_form_error(result, "serial", "connect_timeout")
    assert entries(hass) == []
    assert f"{url} did not accept a connection within {SHORT_TIMEOUT:g} s" in caplog.text
    result = await submit(hass, result, {CONF_PORT: sim_server.url})
    assert result["type"] is FlowResultType.CREATE_ENTRY


def _silent(sim: SimulatedBalancer) -> Callable[[], None]:
    sim.silent = True

    def fix() -> None:
        sim.silent = False

    return fix


def _stops(sim: SimulatedBalancer) -> Callable[[], None]:
    return stop_answering_after(sim, 1)


def _bms(sim: SimulatedBalancer) -> Callable[[], None]:
    make_bms(sim)
    return lambda: make_balancer(sim)


def _garbage(sim: SimulatedBalancer) -> Callable[[], None]:
    """Bytes that hold no frame (a wrong baud rate, another device on the line)."""
    sim.receive = lambda data: [Reply((b"\x00\x13\x37 line noise \xff\xfe",))]  # type: ignore[method-assign]

    def fix() -> None:
        del sim.receive

    return fix


@pytest.mark.usefixtures("short_timeouts")
@pytest.mark.parametrize(
    ("fault", "error"),
    [(_silent, "no_answer"), (_stops, "timeout"), (_bms, "not_balancer"), (_garbage, "bad_answer")],
    ids=["silent", "stops", "bms", "garbage"],
)
async def test_serial_probe_errors(
    hass: HomeAssistant,
    link: SimulatorServer,
    simulator: SimulatedBalancer,
    usb_ports: list[Any],
    mock_setup_entry: AsyncMock,
    monkeypatch: pytest.MonkeyPatch,
    fault: Callable[[SimulatedBalancer], Callable[[], None]],
    error: str,
) -> None:
    """Silence, a module that stops part-way and a BMS each get their own error; a retry works.

    The probe's own time budget is made endless: only the client's short timeouts and bounded
    retries can end the probe (were they unbounded, the test would hang until pytest-timeout).
    """
    monkeypatch.setattr(config_flow, "PROBE_TIMEOUT", ENDLESS)
    fix = fault(simulator)
    result = await open_step(hass, "serial")
    result = await submit(hass, result, {CONF_PORT: link.url})
    assert_form_error(result, "serial", error)
    assert entries(hass) == []
    assert simulator.stats.writes == 0
    fix()
    result = await submit(hass, result, {CONF_PORT: link.url})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: link.url}


async def _serve_exception_replies() -> tuple[asyncio.Server, str]:
    """A Modbus-like device on TCP that answers every read with an exception reply."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = FrameStream(D2Framing(Direction.REQUEST))
        try:
            while data := await reader.read(256):
                for frame in stream.feed(data):
                    if isinstance(frame, ReadRequest):
                        writer.write(ExceptionResponse(Function.READ, 0x02).encode())
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_serial_exception_replies_are_not_a_balancer(
    hass: HomeAssistant, usb_ports: list[Any], mock_setup_entry: AsyncMock
) -> None:
    """A device that refuses the balancer's registers with exception replies is not a balancer."""
    server, url = await _serve_exception_replies()
    try:
        result = await open_step(hass, "serial")
        result = await submit(hass, result, {CONF_PORT: url})
    finally:
        server.close()
        await server.wait_closed()
    assert_form_error(result, "serial", "not_balancer")
    assert entries(hass) == []


@pytest.mark.parametrize(("answers", "error"), [(0, "no_answer"), (1, "timeout")])
async def test_probe_budget_runs_out(
    hass: HomeAssistant,
    sim_server: SimulatorServer,
    simulator: SimulatedBalancer,
    usb_ports: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    answers: int,
    error: str,
) -> None:
    """When the whole probe's time budget ends first, the error still tells silence from a stall.

    The client's own timeout is made endless: only the probe's budget can end the probe.
    """
    monkeypatch.setattr(config_flow, "PROBE_TIMEOUT", 0.3)
    defaults = DalyClient.__init__.__kwdefaults__
    assert defaults is not None and "timeout" in defaults
    monkeypatch.setitem(defaults, "timeout", ENDLESS)
    if answers:
        stop_answering_after(simulator, answers)
    else:
        simulator.silent = True
    result = await open_step(hass, "serial")
    result = await submit(hass, result, {CONF_PORT: sim_server.url})
    assert_form_error(result, "serial", error)


# --- Bluetooth discovery ----------------------------------------------------------------------


def _matcher_advertisement(matcher: dict[str, Any]) -> BluetoothServiceInfoBleak:
    """An advertisement that only ``matcher`` of the manifest's matchers accepts."""
    if "local_name" in matcher:
        assert matcher["local_name"] == "DL-*"
        return service_info(name=DALY_NAME, manufacturer_data={})
    # A renamed dongle (the GAP name is writable, reference §2.1): only its manufacturer data tells.
    return service_info(name="Akku-2", manufacturer_data={matcher["manufacturer_id"]: DALY_MANUFACTURER_PAYLOAD})


def _flows(hass: HomeAssistant) -> list[Any]:
    return list(hass.config_entries.flow.async_progress_by_handler(DOMAIN))


@pytest.mark.parametrize(
    "matcher", MANIFEST["bluetooth"], ids=lambda m: str(m.get("local_name", m.get("manufacturer_id")))
)
async def test_bluetooth_discovery_each_matcher(
    hass: HomeAssistant,
    simulator: SimulatedBalancer,
    monkeypatch: pytest.MonkeyPatch,
    mock_setup_entry: AsyncMock,
    matcher: dict[str, Any],
) -> None:
    """Every manifest matcher starts a flow from a real advertisement; confirming probes over BLE."""
    assert matcher["connectable"] is True
    dongle = use_standin_dongle(monkeypatch, simulator)
    info = _matcher_advertisement(matcher)
    await inject_advertisement(hass, info)
    (flow,) = _flows(hass)
    assert flow["context"]["source"] == SOURCE_BLUETOOTH
    assert flow["context"]["unique_id"] == DALY_ADDRESS
    assert flow["context"]["title_placeholders"] == {"name": info.name}
    assert flow["step_id"] == "bluetooth_confirm"
    assert dongle.connects == 0  # nothing connects before the user confirms

    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # The dongle's name with the address in it shortened; a renamed dongle keeps its name.
    assert result["title"] == (
        "DALY balancer 16S (DL-…5C9B)" if info.name == DALY_NAME else "DALY balancer 16S (Akku-2)"
    )
    assert result["data"] == {CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: DALY_ADDRESS}
    assert result["result"].unique_id == DALY_ADDRESS
    # The probe went through the dongle and released it (the DALY app may connect again).
    assert dongle.connects == 1
    assert dongle.disconnects == 1
    assert simulator.stats.requests >= 5


async def test_bluetooth_unrelated_advertisement_starts_no_flow(hass: HomeAssistant) -> None:
    """An advertisement no matcher accepts (another vendor's device) starts nothing."""
    await inject_advertisement(
        hass, service_info(address=OTHER_ADDRESS, name="Sensor-1", manufacturer_data={0x1234: b"\x05"})
    )
    assert _flows(hass) == []


async def test_bluetooth_confirm_form(hass: HomeAssistant) -> None:
    """Discovery asks before connecting, naming the dongle."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_BLUETOOTH}, data=service_info()
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "bluetooth_confirm"
    assert result["description_placeholders"] == {"name": DALY_NAME}
    assert result["errors"] == {}


async def test_bluetooth_discovery_already_configured(hass: HomeAssistant) -> None:
    """A dongle that already has an entry aborts discovery."""
    MockConfigEntry(
        domain=DOMAIN, unique_id=DALY_ADDRESS, data={CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: DALY_ADDRESS}
    ).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_BLUETOOTH}, data=service_info()
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_bluetooth_confirm_not_a_balancer(
    hass: HomeAssistant, simulator: SimulatedBalancer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DALY BMS dongle (same name scheme) is shown as not a balancer, and no entry is made."""
    make_bms(simulator)
    dongle = use_standin_dongle(monkeypatch, simulator)
    await inject_advertisement(hass, service_info())
    (flow,) = _flows(hass)
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert_form_error(result, "bluetooth_confirm", "not_balancer")
    assert result["description_placeholders"] == {"name": DALY_NAME}
    assert entries(hass) == []
    assert dongle.connects == dongle.disconnects == 1


async def test_bluetooth_confirm_connection_refused(
    hass: HomeAssistant, simulator: SimulatedBalancer, monkeypatch: pytest.MonkeyPatch, mock_setup_entry: AsyncMock
) -> None:
    """A dongle that refuses the connection (the phone app holds it) gives ``not_found``; retry works."""
    dongle = use_standin_dongle(monkeypatch, simulator)
    dongle.fail_connect = True
    await inject_advertisement(hass, service_info())
    (flow,) = _flows(hass)
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert_form_error(result, "bluetooth_confirm", "not_found")
    assert entries(hass) == []
    dongle.fail_connect = False
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY


# --- Bluetooth: manual step -------------------------------------------------------------------


async def test_ble_step_lists_matching_connectable_unconfigured_dongles(
    hass: HomeAssistant, simulator: SimulatedBalancer, monkeypatch: pytest.MonkeyPatch, mock_setup_entry: AsyncMock
) -> None:
    """Only connectable, matching, not yet configured dongles are offered; picking one works."""
    use_standin_dongle(monkeypatch, simulator)
    configured = "40:17:10:01:AA:01"
    MockConfigEntry(
        domain=DOMAIN, unique_id=configured, data={CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: configured}
    ).add_to_hass(hass)
    for info in (
        service_info(),  # offered
        service_info(address="40:17:10:01:AA:02", name="Akku-2", manufacturer_data={0x0104: DALY_MANUFACTURER_PAYLOAD}),
        service_info(address=configured, name="DL-4017100100AA01"),  # already configured
        service_info(address=OTHER_ADDRESS, name="Thermometer", manufacturer_data={0x1234: b"\x05"}),  # not DALY
        service_info(address="40:17:10:01:AA:03", name="DL-4017100100AA03", connectable=False),  # cannot connect
    ):
        await inject_advertisement(hass, info)

    result = await open_step(hass, "ble")
    assert sorted(select_options(result, CONF_ADDRESS), key=lambda o: o["value"]) == [
        {"value": "40:17:10:01:5C:9B", "label": f"{DALY_NAME} (40:17:10:01:5C:9B)"},
        {"value": "40:17:10:01:AA:02", "label": "Akku-2 (40:17:10:01:AA:02)"},
    ]
    assert selector_config(result, CONF_ADDRESS)["custom_value"] is True
    result = await submit(hass, result, {CONF_ADDRESS: DALY_ADDRESS})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: DALY_ADDRESS}
    assert result["result"].unique_id == DALY_ADDRESS


async def test_ble_step_typed_address(
    hass: HomeAssistant, simulator: SimulatedBalancer, monkeypatch: pytest.MonkeyPatch, mock_setup_entry: AsyncMock
) -> None:
    """Junk is ``invalid_address``, an address nothing can reach is ``not_found``; a typed address works."""
    dongle = use_standin_dongle(monkeypatch, simulator)
    await inject_advertisement(hass, service_info())
    result = await open_step(hass, "ble")

    for junk in ("not-a-mac", "40:17:10:01:5C", "40:17:10:01:5C:9G", ""):
        result = await submit(hass, result, {CONF_ADDRESS: junk})
        assert_form_error(result, "ble", "invalid_address")
        assert suggested(result, CONF_ADDRESS) == junk

    result = await submit(hass, result, {CONF_ADDRESS: OTHER_ADDRESS})
    assert_form_error(result, "ble", "not_found")
    assert dongle.connects == 0
    assert entries(hass) == []

    # Lower case with dashes, as some tools print it, is normalised.
    result = await submit(hass, result, {CONF_ADDRESS: " 40-17-10-01-5c-9b "})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: DALY_ADDRESS}
    assert result["result"].unique_id == DALY_ADDRESS
    assert dongle.connects == 1


async def test_ble_step_already_configured(hass: HomeAssistant) -> None:
    """Typing the address of a configured dongle aborts."""
    MockConfigEntry(
        domain=DOMAIN, unique_id=DALY_ADDRESS, data={CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: DALY_ADDRESS}
    ).add_to_hass(hass)
    result = await open_step(hass, "ble")
    result = await submit(hass, result, {CONF_ADDRESS: DALY_ADDRESS.lower()})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


# --- reconfigure ------------------------------------------------------------------------------


async def test_reconfigure_serial_to_new_module(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    simulator: SimulatedBalancer,
    usb_ports: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The URL is changed to another module: the entry is updated and reloaded onto it.

    The old link is released and stays released: the integration's update listener (options apply
    without a reload) must not poll the old module again because the entry's data changed, and
    Home Assistant must not warn about a listener that outlives a reload-and-abort.
    """
    entry = init_integration
    old_url = entry.data[CONF_PORT]
    old_client = entry.runtime_data.client
    assert entry.runtime_data.data.status.cell_count == 16
    new_sim = SimulatedBalancer(SimulatorConfig(cells=7, seed=4))
    new_server = await serve_pty(new_sim)
    try:
        result = await entry.start_reconfigure_flow(hass)
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "reconfigure"
        assert suggested(result, CONF_PORT) == old_url

        old_requests = simulator.stats.requests
        result = await submit(hass, result, {CONF_PORT: new_server.url})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert entry.data == {CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: new_server.url}
        assert entry.unique_id == new_server.url
        assert entry.state is ConfigEntryState.LOADED
        assert entry.runtime_data.client is not old_client
        assert entry.runtime_data.client.transport.description == new_server.url
        assert entry.runtime_data.data.status.cell_count == 7
        assert not old_client.transport.is_open
        assert simulator.stats.requests == old_requests
        assert not [r for r in caplog.records if "update listener" in r.getMessage()]
        await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    finally:
        await new_server.close()


async def test_reconfigure_to_another_bridge_keeps_entity_and_device_ids(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    init_integration: MockConfigEntry,
    simulator: SimulatedBalancer,
    usb_ports: list[Any],
) -> None:
    """The same module moved to another bridge address: its entities keep their ids (history,
    dashboards, automations) and its device stays the one device; none is left unavailable."""
    entry = init_integration
    before = {e.entity_id: e.id for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id)}
    (device,) = dr.async_entries_for_config_entry(device_registry, entry.entry_id)
    moved = await serve_tcp(simulator)
    try:
        result = await entry.start_reconfigure_flow(hass)
        result = await submit(hass, result, {CONF_PORT: moved.url})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        assert entry.unique_id == moved.url

        after = {e.entity_id: e.id for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id)}
        assert after == before
        for entity_id in after:
            registered = entity_registry.async_get(entity_id)
            assert registered is not None
            assert registered.unique_id.startswith(f"{moved.url}_"), entity_id
            assert registered.device_id == device.id
            state = hass.states.get(entity_id)
            if registered.disabled_by is None:
                assert state is not None, entity_id
                assert state.state != STATE_UNAVAILABLE, entity_id
        devices = dr.async_entries_for_config_entry(device_registry, entry.entry_id)
        assert [d.id for d in devices] == [device.id]
        assert devices[0].identifiers == {(DOMAIN, moved.url)}
        await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    finally:
        await moved.close()


@pytest.mark.parametrize("own_title", [None, "Garage pack", "DALY balancer 16S (garage)"])
async def test_reconfigure_names_the_new_link_in_the_title_the_flow_gave(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    simulator: SimulatedBalancer,
    sim_server: SimulatorServer,
    usb_ports: list[Any],
    own_title: str | None,
) -> None:
    """The title the flow made names the link; after a move to another bridge it names the new
    one, and so does the device (its name follows the title). A title of the user's own, even
    one that looks like the flow's, is theirs: it stays."""
    result = await add_port(hass, sim_server.url)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.title == f"DALY balancer 16S (127.0.0.1:{sim_server.port})"
    if own_title is not None:
        hass.config_entries.async_update_entry(entry, title=own_title)
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
    moved = await serve_tcp(simulator)
    try:
        result = await start_reconfigure(hass, entry)
        result = await submit(hass, result, {CONF_PORT: moved.url})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        expected = own_title or f"DALY balancer 16S (127.0.0.1:{moved.port})"
        assert entry.title == expected
        (device,) = dr.async_entries_for_config_entry(device_registry, entry.entry_id)
        assert device.name == expected
        await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    finally:
        await moved.close()


async def test_reconfigure_running_entry_on_its_own_port(
    hass: HomeAssistant, simulator: SimulatedBalancer, usb_ports: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A running entry holds (locks) its serial port: reconfigure releases it for the probe.

    A failed attempt puts the entry back onto its old port; submitting the same port (or another
    path to the same adapter) then succeeds.
    """
    server = await serve_pty(simulator)
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=server.url, data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: server.url}
    )
    entry.add_to_hass(hass)
    try:
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.runtime_data.client.transport.is_open

        result = await entry.start_reconfigure_flow(hass)
        result = await submit(hass, result, {CONF_PORT: f"socket://127.0.0.1:{refused_port()}"})
        assert_form_error(result, "reconfigure", "cannot_open")
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        assert entry.runtime_data.client.transport.description == server.url
        assert entry.data[CONF_PORT] == server.url

        result = await submit(hass, result, {CONF_PORT: server.url})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        assert entry.unique_id == entry.data[CONF_PORT] == server.url
        assert not [r for r in caplog.records if "update listener" in r.getMessage()]
        await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    finally:
        await server.close()


@pytest.mark.usefixtures("short_timeouts")
async def test_reconfigure_serial_errors_keep_the_entry(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    simulator: SimulatedBalancer,
    usb_ports: list[Any],
    mock_setup_entry: AsyncMock,
) -> None:
    """Failed attempts change nothing; the form keeps what was typed; a good one saves."""
    old_url = config_entry.data[CONF_PORT]
    result = await config_entry.start_reconfigure_flow(hass)
    refused = f"socket://127.0.0.1:{refused_port()}"
    for port, error in (("foo", "invalid_port"), (refused, "cannot_open")):
        result = await submit(hass, result, {CONF_PORT: port})
        assert_form_error(result, "reconfigure", error)
        assert suggested(result, CONF_PORT) == port
        assert config_entry.data[CONF_PORT] == old_url
        assert config_entry.unique_id == old_url

    # The same URL again while the module is silent: nothing answers, nothing changes.
    simulator.silent = True
    result = await submit(hass, result, {CONF_PORT: old_url})
    assert_form_error(result, "reconfigure", "no_answer")
    simulator.silent = False
    result = await submit(hass, result, {CONF_PORT: old_url})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert config_entry.data == {CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: old_url}
    assert config_entry.unique_id == old_url
    await hass.async_block_till_done()
    assert len(mock_setup_entry.mock_calls) == 1  # reloaded (set up) once, after the good attempt


async def test_reconfigure_serial_to_port_of_another_entry(
    hass: HomeAssistant, config_entry: MockConfigEntry, usb_ports: list[Any]
) -> None:
    """Reconfiguring onto a port another entry uses aborts and leaves both entries alone."""
    other = MockConfigEntry(
        domain=DOMAIN, unique_id="/dev/ttyUSB1", data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: "/dev/ttyUSB1"}
    )
    other.add_to_hass(hass)
    result = await config_entry.start_reconfigure_flow(hass)
    result = await submit(hass, result, {CONF_PORT: "/dev/ttyUSB1"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert config_entry.data[CONF_PORT] != "/dev/ttyUSB1"


async def test_reconfigure_ble_address(
    hass: HomeAssistant, simulator: SimulatedBalancer, monkeypatch: pytest.MonkeyPatch, mock_setup_entry: AsyncMock
) -> None:
    """A BLE entry's address is changed (e.g. a replaced dongle) after the new one is read."""
    dongle = use_standin_dongle(monkeypatch, simulator)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="DALY balancer 16S (DL-…2233)",  # as the flow titled the old dongle
        unique_id=OTHER_ADDRESS,
        data={CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: OTHER_ADDRESS},
    )
    entry.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, OTHER_ADDRESS)},
        connections={(dr.CONNECTION_BLUETOOTH, OTHER_ADDRESS)},
    )
    pack = er.async_get(hass).async_get_or_create(
        "sensor", DOMAIN, f"{OTHER_ADDRESS}_pack_voltage", config_entry=entry, device_id=device.id
    )
    await inject_advertisement(hass, service_info())
    for flow in _flows(hass):  # the new dongle was also discovered; that flow is not used here
        hass.config_entries.flow.async_abort(flow["flow_id"])

    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert fields(result) == {CONF_ADDRESS}
    assert suggested(result, CONF_ADDRESS) == OTHER_ADDRESS

    result = await submit(hass, result, {CONF_ADDRESS: "nonsense"})
    assert_form_error(result, "reconfigure", "invalid_address")
    result = await submit(hass, result, {CONF_ADDRESS: "40:17:10:01:00:00"})
    assert_form_error(result, "reconfigure", "not_found")
    assert entry.data[CONF_ADDRESS] == OTHER_ADDRESS

    result = await submit(hass, result, {CONF_ADDRESS: DALY_ADDRESS.lower()})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: DALY_ADDRESS}
    assert entry.unique_id == DALY_ADDRESS
    assert entry.title == "DALY balancer 16S (DL-…5C9B)"  # the new dongle's name, as the flow gives it
    assert dongle.connects == dongle.disconnects == 1
    # The entity and the device move with the entry: the device is reached at the new address.
    registered = er.async_get(hass).async_get(pack.entity_id)
    assert registered is not None
    assert registered.unique_id == f"{DALY_ADDRESS}_pack_voltage"
    updated = dr.async_get(hass).async_get(device.id)
    assert updated is not None
    assert updated.identifiers == {(DOMAIN, DALY_ADDRESS)}
    assert updated.connections == {(dr.CONNECTION_BLUETOOTH, DALY_ADDRESS)}
    await hass.async_block_till_done()
    assert len(mock_setup_entry.mock_calls) == 1


# --- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sleep_time", "interval", "error"),
    [
        (60, 120, "interval_longer_than_sleep"),
        (60, 60, None),
        (SLEEP_NEVER, MAX_UPDATE_INTERVAL, None),
    ],
    ids=["longer", "equal", "never sleeps"],
)
async def test_options_refuse_polls_further_apart_than_the_sleep_time(
    hass: HomeAssistant,
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
    sleep_time: int,
    interval: int,
    error: str | None,
) -> None:
    """A module that sleeps between polls loses each poll's first request: the options flow
    refuses an interval longer than the sleep time the module reports (as the Sleep time number
    refuses the opposite), and keeps what was typed; a module that never sleeps takes any."""
    simulator.write_word(BY_KEY["sleep_time"].address, sleep_time)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    try:
        result = await hass.config_entries.options.async_init(config_entry.entry_id)
        user_input = {CONF_UPDATE_INTERVAL: interval, CONF_SETTINGS_EVERY: 10}
        result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
        if error is None:
            assert result["type"] is FlowResultType.CREATE_ENTRY
            assert config_entry.options[CONF_UPDATE_INTERVAL] == interval
        else:
            assert result["type"] is FlowResultType.FORM
            assert result["errors"] == {CONF_UPDATE_INTERVAL: error}
            assert result["description_placeholders"] == {"sleep_time": str(sleep_time)}
            assert suggested(result, CONF_UPDATE_INTERVAL) == interval
            assert CONF_UPDATE_INTERVAL not in config_entry.options
    finally:
        await hass.config_entries.async_unload(config_entry.entry_id)
        await hass.async_block_till_done()


def _entry(hass: HomeAssistant, connection: str, options: dict[str, Any] | None = None) -> MockConfigEntry:
    key, value = (CONF_ADDRESS, DALY_ADDRESS) if connection == CONNECTION_BLE else (CONF_PORT, "/dev/ttyUSB0")
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=value, data={CONF_CONNECTION: connection, key: value}, options=options or {}
    )
    entry.add_to_hass(hass)
    return entry


async def test_options_serial(hass: HomeAssistant) -> None:
    """Serial entries get interval, settings cadence and "not keeping up" (no BLE switch); counts
    are stored as ints, the threshold as a float."""
    entry = _entry(hass, CONNECTION_SERIAL)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    assert fields(result) == {
        CONF_UPDATE_INTERVAL,
        CONF_SETTINGS_EVERY,
        CONF_NOT_KEEPING_UP_TREND,
        CONF_NOT_KEEPING_UP_DAYS,
    }
    assert selector_config(result, CONF_UPDATE_INTERVAL)["min"] == MIN_UPDATE_INTERVAL
    assert selector_config(result, CONF_UPDATE_INTERVAL)["max"] == MAX_UPDATE_INTERVAL
    trend = selector_config(result, CONF_NOT_KEEPING_UP_TREND)
    assert (trend["min"], trend["max"], trend["unit_of_measurement"]) == (
        MIN_NOT_KEEPING_UP_TREND,
        MAX_NOT_KEEPING_UP_TREND,
        "mV/d",
    )
    days = selector_config(result, CONF_NOT_KEEPING_UP_DAYS)
    assert (days["min"], days["max"]) == (MIN_NOT_KEEPING_UP_DAYS, MAX_NOT_KEEPING_UP_DAYS)

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_UPDATE_INTERVAL: 7.0,
            CONF_SETTINGS_EVERY: 3.0,
            CONF_NOT_KEEPING_UP_TREND: 4,
            CONF_NOT_KEEPING_UP_DAYS: 5.0,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_UPDATE_INTERVAL: 7,
        CONF_SETTINGS_EVERY: 3,
        CONF_NOT_KEEPING_UP_TREND: 4.0,
        CONF_NOT_KEEPING_UP_DAYS: 5,
    }
    assert type(entry.options[CONF_NOT_KEEPING_UP_TREND]) is float
    assert all(type(entry.options[key]) is int for key in (CONF_UPDATE_INTERVAL, CONF_SETTINGS_EVERY))
    assert type(entry.options[CONF_NOT_KEEPING_UP_DAYS]) is int


async def test_options_defaults_and_current_values(hass: HomeAssistant) -> None:
    """Empty input takes the defaults; an existing entry's options are pre-filled."""
    entry = _entry(hass, CONNECTION_BLE)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert entry.options == {
        CONF_UPDATE_INTERVAL: DEFAULT_UPDATE_INTERVAL,
        CONF_SETTINGS_EVERY: DEFAULT_SETTINGS_EVERY,
        CONF_KEEP_CONNECTED: DEFAULT_KEEP_CONNECTED,
        CONF_NOT_KEEPING_UP_TREND: DEFAULT_RISING_MV_PER_DAY,
        CONF_NOT_KEEPING_UP_DAYS: DEFAULT_RISING_DAYS,
    }

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result, CONF_UPDATE_INTERVAL) == DEFAULT_UPDATE_INTERVAL
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_UPDATE_INTERVAL: 30, CONF_SETTINGS_EVERY: 5, CONF_KEEP_CONNECTED: False}
    )
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result, CONF_UPDATE_INTERVAL) == 30
    assert suggested(result, CONF_SETTINGS_EVERY) == 5
    assert suggested(result, CONF_KEEP_CONNECTED) is False


async def test_options_ble_offers_keep_connected(hass: HomeAssistant) -> None:
    """BLE entries also choose whether to keep the link open."""
    entry = _entry(hass, CONNECTION_BLE)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert fields(result) == {
        CONF_UPDATE_INTERVAL,
        CONF_SETTINGS_EVERY,
        CONF_KEEP_CONNECTED,
        CONF_NOT_KEEPING_UP_TREND,
        CONF_NOT_KEEPING_UP_DAYS,
    }
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_UPDATE_INTERVAL: MIN_UPDATE_INTERVAL, CONF_SETTINGS_EVERY: 1, CONF_KEEP_CONNECTED: False},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_UPDATE_INTERVAL: MIN_UPDATE_INTERVAL,
        CONF_SETTINGS_EVERY: 1,
        CONF_KEEP_CONNECTED: False,
        CONF_NOT_KEEPING_UP_TREND: DEFAULT_RISING_MV_PER_DAY,
        CONF_NOT_KEEPING_UP_DAYS: DEFAULT_RISING_DAYS,
    }


@pytest.mark.parametrize(
    "user_input",
    [
        {CONF_UPDATE_INTERVAL: MIN_UPDATE_INTERVAL - 1, CONF_SETTINGS_EVERY: 10},
        {CONF_UPDATE_INTERVAL: 0.5, CONF_SETTINGS_EVERY: 10},
        {CONF_UPDATE_INTERVAL: MAX_UPDATE_INTERVAL + 1, CONF_SETTINGS_EVERY: 10},
        {CONF_UPDATE_INTERVAL: 10, CONF_SETTINGS_EVERY: 0},
        {CONF_UPDATE_INTERVAL: 10, CONF_SETTINGS_EVERY: MAX_SETTINGS_EVERY + 1},
        {CONF_UPDATE_INTERVAL: 10, CONF_SETTINGS_EVERY: 10, CONF_KEEP_CONNECTED: True},  # not offered on serial
        {CONF_UPDATE_INTERVAL: 10, CONF_SETTINGS_EVERY: 10, CONF_NOT_KEEPING_UP_TREND: MIN_NOT_KEEPING_UP_TREND - 0.5},
        {CONF_UPDATE_INTERVAL: 10, CONF_SETTINGS_EVERY: 10, CONF_NOT_KEEPING_UP_TREND: MAX_NOT_KEEPING_UP_TREND + 1},
        {CONF_UPDATE_INTERVAL: 10, CONF_SETTINGS_EVERY: 10, CONF_NOT_KEEPING_UP_DAYS: MIN_NOT_KEEPING_UP_DAYS - 1},
        {CONF_UPDATE_INTERVAL: 10, CONF_SETTINGS_EVERY: 10, CONF_NOT_KEEPING_UP_DAYS: MAX_NOT_KEEPING_UP_DAYS + 1},
    ],
)
async def test_options_out_of_range_rejected(hass: HomeAssistant, user_input: dict[str, Any]) -> None:
    """Values outside the selectors' range (below the interval floor, above the ceilings) are refused."""
    entry = _entry(hass, CONNECTION_SERIAL, {CONF_UPDATE_INTERVAL: 20})
    result = await hass.config_entries.options.async_init(entry.entry_id)
    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    assert entry.options == {CONF_UPDATE_INTERVAL: 20}
