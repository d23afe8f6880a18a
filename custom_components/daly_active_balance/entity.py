"""Base entity: one device per module, entities named through translations."""

from __future__ import annotations

from homeassistant.const import CONF_ADDRESS
from homeassistant.helpers.device_registry import CONNECTION_BLUETOOTH, DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import CONF_CONNECTION, CONNECTION_BLE, DOMAIN, MANUFACTURER
from .coordinator import DalyCoordinator


def device_info(coordinator: DalyCoordinator) -> DeviceInfo:
    """The device registry entry of the module behind ``coordinator``."""
    entry = coordinator.config_entry
    identity = coordinator.identity
    info = DeviceInfo(
        identifiers={(DOMAIN, str(entry.unique_id))},
        manufacturer=MANUFACTURER,
        model="Smart Active Balance Module",
        name=entry.title,
        sw_version=identity.software_version,
        hw_version=identity.hardware_version,
        serial_number=identity.serial_number,
    )
    if entry.data.get(CONF_CONNECTION) == CONNECTION_BLE:
        info["connections"] = {(CONNECTION_BLUETOOTH, entry.data[CONF_ADDRESS])}
    return info


class DalyEntity(CoordinatorEntity[DalyCoordinator]):
    """An entity of one DALY balancer."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: DalyCoordinator, description: EntityDescription) -> None:
        """Name, unique id and device come from the description and the entry."""
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{coordinator.config_entry.unique_id}_{description.key}"
        self._attr_device_info = device_info(coordinator)
