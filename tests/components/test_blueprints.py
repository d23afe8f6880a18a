"""The shipped automation blueprints, through Home Assistant's blueprint machinery, against the simulator."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
import shutil
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.binary_sensor import BinarySensorDeviceClass
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_service,
)
import yaml

from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorServer
from custom_components.daly_active_balance.const import DOMAIN

pytestmark = pytest.mark.usefixtures("socket_enabled")

BLUEPRINTS = Path(__file__).resolve().parents[2] / "blueprints" / "automation" / DOMAIN
NOTIFY = [
    {"action": "notify.battery_phone", "data": {"message": "{{ trigger.to_state.name }}: {{ trigger.to_state.state }}"}}
]


def _entity_id(hass: HomeAssistant, entry: MockConfigEntry, platform: str, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{entry.unique_id}_{key}")
    assert entity_id is not None, key
    return entity_id


async def _use_blueprint(hass: HomeAssistant, tmp_path: Path, name: str, inputs: dict[str, Any]) -> list[ServiceCall]:
    """Install the blueprint where Home Assistant looks for it and set up one automation from it."""
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / DOMAIN
    target.mkdir(parents=True)
    shutil.copy(BLUEPRINTS / name, target / name)
    calls = async_mock_service(hass, "notify", "battery_phone")
    config = {"automation": [{"id": name, "use_blueprint": {"path": f"{DOMAIN}/{name}", "input": inputs}}]}
    assert await async_setup_component(hass, "automation", config)
    await hass.async_block_till_done()
    automations = hass.states.async_all("automation")
    assert len(automations) == 1
    assert automations[0].state == "on", automations[0]
    return calls


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, minutes: float) -> None:
    freezer.tick(timedelta(minutes=minutes))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


@pytest.mark.parametrize("name", sorted(path.name for path in BLUEPRINTS.glob("*.yaml")))
def test_blueprints_name_their_inputs_and_this_integration(name: str) -> None:
    """Each input is named and described; entity inputs offer this integration's entities only."""

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_constructor("!input", lambda loader, node: loader.construct_scalar(node))
    blueprint = yaml.load((BLUEPRINTS / name).read_text(encoding="utf-8"), Loader=_Loader)["blueprint"]
    assert blueprint["domain"] == "automation"
    assert blueprint["source_url"].endswith(f"blueprints/automation/{DOMAIN}/{name}")
    for key, spec in blueprint["input"].items():
        assert spec["name"], key
        assert spec["description"], key
        if "entity" in spec["selector"]:
            assert all(f["integration"] == DOMAIN for f in spec["selector"]["entity"]["filter"]), key


def _inputs(name: str) -> dict[str, Any]:
    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_constructor("!input", lambda loader, node: loader.construct_scalar(node))
    inputs: dict[str, Any] = yaml.load((BLUEPRINTS / name).read_text(encoding="utf-8"), Loader=_Loader)["blueprint"][
        "input"
    ]
    return inputs


def _offered(hass: HomeAssistant, entry: MockConfigEntry, selector: dict[str, Any]) -> list[str]:
    """The entities of ``entry`` an entity selector offers (its filter: integration, domain, device class)."""
    offered = []
    for entity in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
        if entity.disabled:
            continue
        device_class = entity.device_class or entity.original_device_class
        for spec in selector["entity"]["filter"]:
            domains = spec.get("domain", entity.domain)
            classes = spec.get("device_class", device_class)
            if (
                spec.get("integration", entity.platform) == entity.platform
                and entity.domain in (domains if isinstance(domains, list) else [domains])
                and device_class in (classes if isinstance(classes, list) else [classes])
            ):
                offered.append(entity.entity_id)
                break
    return offered


async def test_stopped_answering_offers_only_entities_that_turn_unavailable(
    hass: HomeAssistant, init_integration: MockConfigEntry, sim_server: SimulatorServer
) -> None:
    """Every entity the blueprint lets the user pick turns unavailable when the module stops
    answering; the pack check and the link's sensors stay available then, so they are not offered."""
    offered = _offered(
        hass, init_integration, _inputs("balancer_stopped_answering.yaml")["balancer_entity"]["selector"]
    )
    assert _entity_id(hass, init_integration, "sensor", "pack_voltage") in offered
    await sim_server.close()
    await init_integration.runtime_data.async_refresh()
    await hass.async_block_till_done()
    assert {entity: hass.states.get(entity).state for entity in offered} == dict.fromkeys(offered, STATE_UNAVAILABLE)


async def test_cell_delta_alert_notifies_once_the_difference_stays_high(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    simulator: SimulatedBalancer,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    delta = _entity_id(hass, init_integration, "sensor", "cell_delta")
    start = hass.states.get(delta)
    assert start is not None
    assert start.attributes["unit_of_measurement"] == "mV"
    assert float(start.state) < 30
    calls = await _use_blueprint(
        hass,
        tmp_path,
        "cell_delta_alert.yaml",
        {"delta_sensor": delta, "threshold": 30, "duration": {"minutes": 10}, "alert_actions": NOTIFY},
    )
    # One cell 80 mV above the others: the difference rises past the threshold.
    simulator.set_cell_voltage(3, max(simulator.cell_voltages()) + 0.080)
    await init_integration.runtime_data.async_refresh()
    await hass.async_block_till_done()
    assert float(hass.states.get(delta).state) > 30
    await _tick(hass, freezer, 5)
    assert calls == []  # not yet for ten minutes
    await _tick(hass, freezer, 6)
    assert len(calls) == 1
    name = hass.states.get(delta).name
    assert calls[0].data["message"] == f"{name}: {hass.states.get(delta).state}"


async def test_cell_delta_alert_stays_quiet_below_the_threshold(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    simulator: SimulatedBalancer,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    delta = _entity_id(hass, init_integration, "sensor", "cell_delta")
    calls = await _use_blueprint(
        hass,
        tmp_path,
        "cell_delta_alert.yaml",
        {"delta_sensor": delta, "threshold": 100, "duration": {"minutes": 1}, "alert_actions": NOTIFY},
    )
    simulator.set_cell_voltage(3, max(simulator.cell_voltages()) + 0.080)  # below 100 mV in all
    await init_integration.runtime_data.async_refresh()
    await _tick(hass, freezer, 11)
    assert 30 < float(hass.states.get(delta).state) < 100
    assert calls == []


async def test_stopped_answering_notifies_after_the_module_is_silent(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    sim_server: SimulatorServer,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    pack = _entity_id(hass, init_integration, "sensor", "pack_voltage")
    calls = await _use_blueprint(
        hass,
        tmp_path,
        "balancer_stopped_answering.yaml",
        {"balancer_entity": pack, "duration": {"minutes": 15}, "alert_actions": NOTIFY},
    )
    await sim_server.close()  # the bridge is gone: nothing answers
    await init_integration.runtime_data.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get(pack).state == STATE_UNAVAILABLE
    await _tick(hass, freezer, 10)
    assert calls == []
    await _tick(hass, freezer, 6)
    assert len(calls) == 1
    assert calls[0].data["message"].endswith(f": {STATE_UNAVAILABLE}")


async def _not_keeping_up(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    """The module's "Balancer not keeping up" sensor, shown off.

    Found by its unique id, like every entity of the integration. Where the integration does not
    create it (a version without the pack insights), one is registered as it would be, so the
    blueprint is tested either way; its state is set here: days of rising trend are the insights'
    own tests.
    """
    registry = er.async_get(hass)
    unique_id = f"{entry.unique_id}_not_keeping_up"
    entity_id = registry.async_get_entity_id("binary_sensor", DOMAIN, unique_id)
    if entity_id is None:
        entity_id = registry.async_get_or_create(
            "binary_sensor",
            DOMAIN,
            unique_id,
            config_entry=entry,
            original_device_class=BinarySensorDeviceClass.PROBLEM,
            original_name="Balancer not keeping up",
        ).entity_id
    assert entity_id in _offered(hass, entry, _inputs("balancer_not_keeping_up.yaml")["problem_entity"]["selector"])
    hass.states.async_set(entity_id, STATE_OFF, {"device_class": "problem", "friendly_name": "Balancer not keeping up"})
    await hass.async_block_till_done()
    return entity_id


def _raise(hass: HomeAssistant, entity_id: str, state: str, causes: list[str]) -> None:
    hass.states.async_set(
        entity_id, state, {"device_class": "problem", "friendly_name": "Balancer not keeping up", "causes": causes}
    )


async def test_not_keeping_up_notifies_with_the_causes(
    hass: HomeAssistant, init_integration: MockConfigEntry, tmp_path: Path
) -> None:
    """The user's notify action gets what to check, once per time the sensor turns on."""
    problem = await _not_keeping_up(hass, init_integration)
    calls = await _use_blueprint(
        hass,
        tmp_path,
        "balancer_not_keeping_up.yaml",
        {
            "problem_entity": problem,
            "alert_actions": [
                {
                    "action": "notify.battery_phone",
                    "data": {"message": "{{ trigger.to_state.name }}: {{ causes_text }}"},
                }
            ],
        },
    )
    _raise(hass, problem, STATE_ON, ["turn_on_voltage_above_top", "cell_losing_capacity"])
    await hass.async_block_till_done()
    assert [call.data["message"] for call in calls] == [
        "Balancer not keeping up: the balance turn-on voltage is above the pack's top of charge; "
        "a cell is losing capacity"
    ]
    # Still on with other causes: no second message; cleared and raised again: one more.
    _raise(hass, problem, STATE_ON, ["balancer_off"])
    await hass.async_block_till_done()
    assert len(calls) == 1
    _raise(hass, problem, STATE_OFF, [])
    _raise(hass, problem, STATE_ON, ["balancer_off"])
    await hass.async_block_till_done()
    assert [call.data["message"] for call in calls][1:] == ["Balancer not keeping up: the balancer is switched off"]


async def test_not_keeping_up_default_notification_and_no_alarm_after_a_restart(
    hass: HomeAssistant, init_integration: MockConfigEntry, tmp_path: Path
) -> None:
    """By default a persistent notification names the causes; a sensor that comes back on after a
    restart or reload (from unavailable) does not notify again."""
    problem = await _not_keeping_up(hass, init_integration)
    await _use_blueprint(hass, tmp_path, "balancer_not_keeping_up.yaml", {"problem_entity": problem})
    created = async_mock_service(hass, "persistent_notification", "create")
    _raise(hass, problem, STATE_UNAVAILABLE, [])
    _raise(hass, problem, STATE_ON, ["turn_on_difference_too_high"])
    await hass.async_block_till_done()
    assert created == []
    _raise(hass, problem, STATE_OFF, [])
    _raise(hass, problem, STATE_ON, ["turn_on_difference_too_high"])
    await hass.async_block_till_done()
    assert len(created) == 1
    assert created[0].data["title"] == "Battery balancer not keeping up"
    assert created[0].data["message"] == (
        "Balancer not keeping up: the cell difference at the top of charge keeps growing. "
        "Check: the balance turn-on difference is set too high."
    )


async def test_not_keeping_up_ignores_another_problem_sensor_picked_by_mistake(
    hass: HomeAssistant, init_integration: MockConfigEntry, tmp_path: Path
) -> None:
    """The selector also offers the module's pack check (a problem sensor): picked, it turns on
    without causes, and the blueprint stays silent rather than say the top difference grows."""
    registry = er.async_get(hass)
    check = registry.async_get_entity_id("binary_sensor", DOMAIN, f"{init_integration.unique_id}_pack_check")
    assert check is not None
    assert check in _offered(
        hass, init_integration, _inputs("balancer_not_keeping_up.yaml")["problem_entity"]["selector"]
    )
    calls = await _use_blueprint(
        hass,
        tmp_path,
        "balancer_not_keeping_up.yaml",
        {"problem_entity": check, "alert_actions": [{"action": "notify.battery_phone", "data": {"message": "x"}}]},
    )
    hass.states.async_set(check, STATE_OFF, {"device_class": "problem"})
    hass.states.async_set(check, STATE_ON, {"device_class": "problem", "warnings": ["cell_out_of_range"]})
    await hass.async_block_till_done()
    assert calls == []
