"""Base entity: one device per module, entities named through translations."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import override

from homeassistant.const import CONF_ADDRESS
from homeassistant.core import callback
from homeassistant.helpers.device_registry import CONNECTION_BLUETOOTH, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from aiodalybalancer.registers import Confidence, register

from .const import CONF_CONNECTION, CONNECTION_BLE, DOMAIN, MANUFACTURER
from .coordinator import DalyConfigEntry, DalyCoordinator, DalyData
from .writes import Writable

#: Register confidences too weak to show an entity unless the user asks for it.
_UNSURE = frozenset({Confidence.INFERRED, Confidence.UNKNOWN})


def enabled_by_default(register_key: str) -> bool:
    """False when the register's meaning is only inferred or unknown (the user enables it)."""
    return register(register_key).confidence not in _UNSURE


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


@dataclass(frozen=True, kw_only=True)
class DalyEntityDescription(EntityDescription):
    """What every description of this integration adds: whether the module has the entity.

    ``exists_fn`` decides both whether the entity is created and whether it is available: a
    cell that disappears after a string count change turns unavailable instead of showing its
    last voltage.
    """

    exists_fn: Callable[[DalyData], bool] = lambda _data: True


class DalyEntity(CoordinatorEntity[DalyCoordinator]):
    """An entity of one DALY balancer."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: DalyCoordinator, description: EntityDescription) -> None:
        """Name, unique id and device come from the description and the entry."""
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{coordinator.config_entry.unique_id}_{description.key}"
        self._attr_device_info = device_info(coordinator)

    @property
    @override
    def available(self) -> bool:
        """Available while the module answers and still has what this entity shows."""
        description = self.entity_description
        if not super().available:
            return False
        return not isinstance(description, DalyEntityDescription) or description.exists_fn(self.coordinator.data)


class DalyLocalEntity(DalyEntity):
    """An entity of Home Assistant's own state about the module (an option, the link's counters).

    It stays available while the module is silent: that is when it is needed.
    """

    @property
    @override
    def available(self) -> bool:
        """Always."""
        return True


@callback
def async_add_present_entities[D: DalyEntityDescription](
    entry: DalyConfigEntry,
    descriptions: Iterable[D],
    factory: Callable[[DalyCoordinator, D], Entity],
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the entities the module has now, and those that appear later (more cells set).

    Entities whose thing disappears stay registered and turn unavailable (see
    ``DalyEntityDescription``).
    """
    coordinator = entry.runtime_data
    pending = list(descriptions)

    @callback
    def add_present() -> None:
        present = [d for d in pending if d.exists_fn(coordinator.data)]
        if not present:
            return
        for description in present:
            pending.remove(description)
        async_add_entities(factory(coordinator, description) for description in present)

    add_present()
    if pending:
        entry.async_on_unload(coordinator.async_add_listener(add_present))


@dataclass(frozen=True, kw_only=True)
class DalySettingEntityDescription(DalyEntityDescription):
    """A description of an entity that writes a setting: which one (never a register key)."""

    setting: Writable


class DalySettingEntity(DalyEntity):
    """An entity that writes its setting: errors speak of it the way the entity shows it."""

    entity_description: DalySettingEntityDescription

    def shown(self, value: object) -> str:
        """A value of the register as this entity shows it (its unit, its option labels)."""
        return str(value)

    async def async_write(self, value: float | int | bool | str) -> None:
        """Write the entity's setting through the coordinator's verified write."""
        name = self.name
        await self.coordinator.async_write(
            self.entity_description.setting,
            value,
            name=name if isinstance(name, str) else None,
            show=self.shown,
        )
