"""Ports as entries hold them: the migrations, credentials, and bridges that never accept.

Every entry here is set up through Home Assistant against the simulator on a real loopback TCP
socket, or against a loopback port whose connects never complete (``unaccepting``).
"""

from __future__ import annotations

import logging

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_ADDRESS, CONF_PORT, STATE_UNAVAILABLE, STATE_UNKNOWN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from aiodalybalancer.client import DalyClient
from aiodalybalancer.errors import ConnectTimeoutError
from aiodalybalancer.redact import REDACTED, redact
from aiodalybalancer.tools.simulator import SimulatorServer
from aiodalybalancer.transport import SerialTransport
from custom_components.daly_active_balance.const import CONF_CONNECTION, CONNECTION_BLE, CONNECTION_SERIAL, DOMAIN
from custom_components.daly_active_balance.ports import InvalidPortError, canonical_port, port_id

from .ble_helpers import DALY_ADDRESS
from .unaccepting import unaccepting_port

pytestmark = pytest.mark.usefixtures("socket_enabled")

KEY = "bm9pc2Uta2V5LTEyMzQ1Njc4OTBhYmNkZWY="
CONNECT_TIMEOUT = 0.15


def old_entry(hass: HomeAssistant, port: str, *, unique_id: str | None = None) -> MockConfigEntry:
    """A serial entry as version 1.1 made it: the port as typed, and its unique id."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="DALY balancer 16S",
        unique_id=port if unique_id is None else unique_id,
        data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: port},
        version=1,
        minor_version=1,
    )
    entry.add_to_hass(hass)
    return entry


async def test_migration_carries_the_port_identity_over(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    sim_server: SimulatorServer,
) -> None:
    """A 1.1 entry spelt oddly, with a key in its URL, gets the canonical port and a unique id
    without the key; its device and entities keep their ids' meaning (same entity ids, history)."""
    typed = f"SOCKET://localhost:0{sim_server.port}/?key={KEY}"
    entry = old_entry(hass, typed)
    device = device_registry.async_get_or_create(config_entry_id=entry.entry_id, identifiers={(DOMAIN, typed)})
    pack = entity_registry.async_get_or_create(
        Platform.SENSOR, DOMAIN, f"{typed}_pack_voltage", config_entry=entry, device_id=device.id
    )
    foreign = entity_registry.async_get_or_create(Platform.SENSOR, DOMAIN, "made-by-hand", config_entry=entry)

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (1, 3)
    assert entry.data[CONF_PORT] == f"{sim_server.url}?key={KEY}"  # still holds what it needs to connect
    assert entry.unique_id == sim_server.url
    moved = entity_registry.async_get(pack.entity_id)
    assert moved is not None
    assert moved.unique_id == f"{sim_server.url}_pack_voltage"
    assert hass.states.get(pack.entity_id) is not None
    entities = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    assert not [e.unique_id for e in entities if KEY in e.unique_id]
    assert {e.unique_id for e in entities if not e.unique_id.startswith(f"{sim_server.url}_")} == {"made-by-hand"}
    assert entity_registry.async_get(foreign.entity_id) is not None
    updated = device_registry.async_get(device.id)
    assert updated is not None
    assert updated.identifiers == {(DOMAIN, sim_server.url)}
    assert len(dr.async_entries_for_config_entry(device_registry, entry.entry_id)) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("enable_bluetooth")
async def test_migration_keeps_an_id_another_entry_has(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture, sim_server: SimulatorServer
) -> None:
    """Two 1.1 entries for one bridge (added twice before): the second keeps its id, with a warning;
    an id the config flow did not derive from the port, and a Bluetooth entry's, are left alone."""
    first = old_entry(hass, sim_server.url)
    second = old_entry(hass, f"{sim_server.url}/")
    custom = old_entry(hass, f"socket://LOCALHOST:{sim_server.port}", unique_id="my-bridge")
    ble = MockConfigEntry(
        domain=DOMAIN,
        unique_id=DALY_ADDRESS,
        data={CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: DALY_ADDRESS},
        minor_version=1,
    )
    ble.add_to_hass(hass)
    # Gone while Home Assistant was off (no device registered yet): migrated all the same.
    absent = old_entry(hass, "/dev/ttyDALY-absent/")
    assert await hass.config_entries.async_setup(first.entry_id)  # sets up the domain's entries
    await hass.async_block_till_done()
    assert [e.minor_version for e in (first, second, custom, ble)] == [3, 3, 3, 3]
    assert ble.unique_id == DALY_ADDRESS
    assert (absent.minor_version, absent.unique_id) == (3, "/dev/ttyDALY-absent")
    assert ble.data == {CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: DALY_ADDRESS}
    assert first.unique_id == sim_server.url
    assert second.unique_id == f"{sim_server.url}/"
    assert second.data[CONF_PORT] == sim_server.url
    assert custom.unique_id == "my-bridge"
    assert custom.data[CONF_PORT] == sim_server.url
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("custom_")]
    assert warnings == [f"DALY balancer 16S uses the same port as another entry ({sim_server.url}): remove one of them"]
    for entry in (first, second, custom, ble, absent):
        await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("port", ["socket://[::1:8899", "socket://[zz]:8899", "socket://bücher..example:8899"])
async def test_migration_keeps_a_malformed_port_loadable(hass: HomeAssistant, port: str) -> None:
    """A 1.1 entry whose port no rule accepts is migrated as it is; setup then says it cannot open it."""
    entry = old_entry(hass, port)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert (entry.version, entry.minor_version) == (1, 3)
    assert (entry.unique_id, entry.data[CONF_PORT]) == (port, port)
    assert entry.reason is not None
    assert port in entry.reason


#: Entity ids as 0.2.0 made them: the device's name (the entry's title) and the entity's.
RELEASED = {
    Platform.SENSOR: {"pack_voltage": "pack_voltage", "cell_voltage_1": "cell_1", "cell_delta": "cell_delta"},
    Platform.SWITCH: {"balancer_enabled": "balancer"},
    Platform.SELECT: {"battery_type": "battery_type"},
}


@pytest.mark.parametrize("scheme", ["socket", "tcp"])
async def test_entity_ids_of_a_0_2_0_install_survive_the_upgrade(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    sim_server: SimulatorServer,
    scheme: str,
) -> None:
    """An entry as 0.2.0 wrote it (1.2; the canonical port, ``tcp://`` kept as typed, the port its
    unique id) with its device and entities: after the upgrade the same entity ids show the module."""
    url = f"{scheme}://127.0.0.1:{sim_server.port}"
    title = f"DALY balancer 16S (127.0.0.1:{sim_server.port})"
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=title,
        unique_id=url,
        data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: url},
        version=1,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    device = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, url)}, name=title, manufacturer="DALY"
    )
    prefix = f"daly_balancer_16s_127_0_0_1_{sim_server.port}"
    released = {
        entity_registry.async_get_or_create(
            platform,
            DOMAIN,
            f"{url}_{key}",
            config_entry=entry,
            device_id=device.id,
            suggested_object_id=f"{prefix}_{name}",
        ).entity_id: key
        for platform, keys in RELEASED.items()
        for key, name in keys.items()
    }

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    for entity_id, key in released.items():
        registered = entity_registry.async_get(entity_id)
        assert registered is not None, entity_id
        assert registered.unique_id == f"{entry.unique_id}_{key}"
        assert registered.device_id == device.id
        state = hass.states.get(entity_id)
        assert state is not None, entity_id
        assert state.state not in (STATE_UNAVAILABLE, STATE_UNKNOWN), entity_id
    entities = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    assert not [e.entity_id for e in entities if e.entity_id.endswith("_2")]
    assert [d.id for d in dr.async_entries_for_config_entry(device_registry, entry.entry_id)] == [device.id]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_migration_joins_entities_split_by_a_reconfigure(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    sim_server: SimulatorServer,
) -> None:
    """Reconfigured onto another bridge before this release: the entry's registry holds the old
    entities (dead, on the old device) beside ``_2`` ones on a second device. The old entity ids
    (their history) and the old device (its name and area) come back to the live entities;
    the ``_2`` ones and the second device go."""
    old_id = "socket://192.0.2.10:8899"
    title = "DALY balancer 16S (192.0.2.10:8899)"
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=title,
        unique_id=sim_server.url,
        data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: sim_server.url},
        version=1,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    old_device = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, old_id)}, name=title
    )
    device_registry.async_update_device(old_device.id, name_by_user="Garage pack")
    new_device = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, sim_server.url)}, name=title
    )
    keys = {Platform.SENSOR: ["pack_voltage", "cell_voltage_1"], Platform.SWITCH: ["balancer_enabled"]}
    old = {}
    for platform, platform_keys in keys.items():
        for key in platform_keys:
            old[key] = entity_registry.async_get_or_create(
                platform,
                DOMAIN,
                f"{old_id}_{key}",
                config_entry=entry,
                device_id=old_device.id,
                suggested_object_id=f"daly_balancer_16s_{key}",
            ).entity_id
    entity_registry.async_update_entity(old["pack_voltage"], name="Pack")
    split = [
        entity_registry.async_get_or_create(
            platform,
            DOMAIN,
            f"{sim_server.url}_{key}",
            config_entry=entry,
            device_id=new_device.id,
            suggested_object_id=f"daly_balancer_16s_{key}",
        ).entity_id
        for platform, platform_keys in keys.items()
        for key in platform_keys
    ]
    assert sorted(split) == sorted(f"{entity_id}_2" for entity_id in old.values())
    # Gone from the module since: the old entity is carried over all the same.
    gone = entity_registry.async_get_or_create(
        Platform.SENSOR, DOMAIN, f"{old_id}_temperature_4", config_entry=entry, device_id=old_device.id
    ).entity_id

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    for key, entity_id in old.items():
        registered = entity_registry.async_get(entity_id)
        assert registered is not None, entity_id
        assert registered.unique_id == f"{sim_server.url}_{key}"
        assert registered.device_id == old_device.id
        state = hass.states.get(entity_id)
        assert state is not None, entity_id
        assert state.state not in (STATE_UNAVAILABLE, STATE_UNKNOWN), entity_id
    assert entity_registry.async_get(old["pack_voltage"]).name == "Pack"  # the user's name stays
    for entity_id in split:
        assert entity_registry.async_get(entity_id) is None, entity_id
        assert hass.states.get(entity_id) is None, entity_id
    moved = entity_registry.async_get(gone)
    assert moved is not None
    assert moved.unique_id == f"{sim_server.url}_temperature_4"
    devices = dr.async_entries_for_config_entry(device_registry, entry.entry_id)
    assert [d.id for d in devices] == [old_device.id]
    assert devices[0].identifiers == {(DOMAIN, sim_server.url)}
    assert devices[0].name_by_user == "Garage pack"
    assert entry.minor_version == 3
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_setup_against_a_bridge_that_never_accepts(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setup names the cause (the bridge did not accept a connection), tries the connect once per
    attempt, and no text or log line holds the URL's key."""
    defaults = SerialTransport.__init__.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "connect_timeout", CONNECT_TIMEOUT)
    caplog.set_level(logging.DEBUG)
    with unaccepting_port() as port:
        url = f"socket://127.0.0.1:{port}?key={KEY}"
        entry = MockConfigEntry(
            domain=DOMAIN,
            unique_id=f"socket://127.0.0.1:{port}",
            data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: url},
            minor_version=2,
        )
        entry.add_to_hass(hass)
        assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason == (
        f"The bridge socket://127.0.0.1:{port}?key={REDACTED} did not accept a connection within "
        f"{CONNECT_TIMEOUT:g} s. Check its address and port, and that it is powered and on the network"
    )
    assert KEY not in caplog.text
    opened = [r for r in caplog.records if "did not accept a connection" in r.getMessage()]
    assert opened


# --- the spelling and identity of ports, and the redaction of link secrets ----------------------


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ("esphome://proxy.local:6053/?port_name=uart1&noise_psk=abc", "esphome://proxy.local?port_name=uart1"),
        ("esphome://user:pw@proxy.local?port_name=uart1&password=x", "esphome://proxy.local?port_name=uart1"),
        ("socket://127.0.0.1:8899", "socket://127.0.0.1:8899"),
        ("COM3", "COM3"),
    ],
)
def test_port_id_leaves_credentials_out(port: str, expected: str) -> None:
    """A port's identity holds no credential (query secrets, a user:password part)."""
    assert port_id(canonical_port(port)) == expected


@pytest.mark.parametrize(
    ("one", "other"),
    [
        # serialx opens both schemes the same way: one bridge.
        ("tcp://127.0.0.1:8899", "socket://127.0.0.1:8899"),
        ("TCP://Bridge.local:8899/", "socket://bridge.local:8899"),
        # A host name and its IDNA (punycode) spelling, in either case.
        ("socket://bücher.example:8899", "socket://xn--bcher-kva.example:8899"),
        ("socket://BÜCHER.example:8899", "socket://XN--BCHER-KVA.example:8899"),
        ("esphome://bücher.example?port_name=uart1", "esphome://xn--bcher-kva.example:6053?port_name=uart1"),
        # A fully-qualified name ends in a dot, written or not.
        ("socket://h.:8899", "socket://h:8899"),
        ("socket://bridge.example.:8899", "socket://Bridge.Example:8899"),
        # An IPv4-mapped IPv6 address is the IPv4 address.
        ("socket://[::ffff:127.0.0.1]:8899", "socket://127.0.0.1:8899"),
        ("rfc2217://[::FFFF:7f00:1]:8899", "rfc2217://localhost:8899"),
    ],
)
def test_one_port_in_two_spellings_is_one_port(one: str, other: str) -> None:
    """Spellings of one port share its identity (the entry's unique id)."""
    assert port_id(canonical_port(one)) == port_id(canonical_port(other))


def test_ports_on_two_hosts_or_ports_differ() -> None:
    """The identity does not merge what is not the same port."""
    ids = {
        port_id(canonical_port(port))
        for port in (
            "socket://a.example:1",
            "socket://a.example:2",
            "socket://b.example:1",
            "rfc2217://a.example:1",
            "socket://[::1]:1",
            "socket://127.0.0.1:1",
            "socket://[::127.0.0.1]:1",  # IPv4-compatible (deprecated), not mapped: another address
        )
    }
    assert len(ids) == 7


def test_canonical_port_keeps_what_connects() -> None:
    """The stored spelling keeps credentials and a user part: the bridge needs them."""
    assert canonical_port(" ESPHOME://u:p@Proxy.Local:6053/?key=a ") == "esphome://u:p@proxy.local?key=a"


@pytest.mark.parametrize(
    "port",
    [
        "",
        "tty0",
        "socket://127.0.0.1",
        "ftp://host:1",
        "socket://:1",
        "rfc2217://h:x",
        # Malformed IPv6 hosts (urlsplit raises ValueError for them), ports out of range.
        "socket://[::1:8899",
        "socket://[zz]:8899",
        "tcp://[::1]x:8899",
        "socket://host:0",
        "tcp://host:65536",
        "rfc2217://host:-1",
        # A host no DNS name can be (an empty label, a label over 63 characters).
        "socket://a..b:1",
        "socket://.:1",
        f"socket://{'a' * 64}.example:1",
    ],
)
def test_canonical_port_refuses(port: str) -> None:
    """Not a device path, a COM port or an accepted URL: refused."""
    with pytest.raises(InvalidPortError):
        canonical_port(port)


@pytest.mark.parametrize(
    ("text", "link", "expected"),
    [
        # A Bluetooth address in every spelling, also inside the dongle's name.
        ("DL-401710015C9B at 40:17:10:01:5c:9b", "40:17:10:01:5C:9B", f"DL-{REDACTED} at {REDACTED}"),
        ("40-17-10-01-5C-9B / 401710015c9b", "40:17:10:01:5C:9B", f"{REDACTED} / {REDACTED}"),
        # BlueZ names the device by its D-Bus path: underscores, in either case.
        (
            "[org.bluez.Error.Failed] /org/bluez/hci0/dev_40_17_10_01_5C_9B: dev_40_17_10_01_5c_9b gone",
            "40:17:10:01:5C:9B",
            f"[org.bluez.Error.Failed] /org/bluez/hci0/dev_{REDACTED}: dev_{REDACTED} gone",
        ),
        # The address given in another spelling redacts every spelling.
        ("DL-401710015C9B, dev_40_17_10_01_5C_9B", "40_17_10_01_5c_9b", f"DL-{REDACTED}, dev_{REDACTED}"),
        # Only this address goes, wherever its twelve digits stand (a hex dump that holds it too);
        # another device's address and other hex stay.
        (
            "40:17:10:01:5C:9C 0x401710015C9B00 deadbeef0042 40_17_10_01_5C",
            "40:17:10:01:5C:9B",
            f"40:17:10:01:5C:9C 0x{REDACTED}00 deadbeef0042 40_17_10_01_5C",
        ),
        # A malformed URL is no reason to fail: its query's secrets go all the same.
        (
            "socket://[::1:8899?key=abc failed",
            "socket://[::1:8899?key=abc",
            f"socket://[::1:8899?key={REDACTED} failed",
        ),
        # URL credentials as typed, percent- and plus-decoded, and in a user:password part.
        (
            "esphome://h?key=a%2Bb+c gave a+b c",
            "esphome://h?key=a%2Bb+c",
            f"esphome://h?key={REDACTED} gave {REDACTED}",
        ),
        ("esphome://me:s3cret@h:1 failed", "esphome://me:s3cret@h:1", f"esphome://me:{REDACTED}@h:1 failed"),
        # Nothing secret: unchanged (also an empty value, and a parameter that is not a secret).
        ("socket://h:1?port_name=u&key=", "socket://h:1?port_name=u&key=", "socket://h:1?port_name=u&key="),
        ("/dev/ttyUSB0 lost", "/dev/ttyUSB0", "/dev/ttyUSB0 lost"),
    ],
)
def test_redact(text: str, link: str, expected: str) -> None:
    """``redact`` takes every secret of a link out of a text and leaves the rest readable."""
    assert redact(text, link) == expected


async def test_client_does_not_retry_a_connect_that_never_completes() -> None:
    """One bounded attempt per request: a bridge that let a whole connect time pass is not tried
    again at once (the poll would hold the link for every retry)."""
    with unaccepting_port() as port:
        client = DalyClient(SerialTransport(f"socket://127.0.0.1:{port}", connect_timeout=CONNECT_TIMEOUT))
        with pytest.raises(ConnectTimeoutError, match="did not accept a connection"):
            await client.poll()
        await client.close()
    assert client.stats.link_errors == 1
    assert client.stats.retries == 0
