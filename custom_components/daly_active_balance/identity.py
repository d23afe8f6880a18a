"""One module, one device, one set of entity ids, whatever link reaches it.

A device's identifier and an entity's unique id derive from the entry's unique id (the link:
Bluetooth address or port identity, ``entity.py``): ``<entry unique id>_<description key>``.
When the link changes (reconfigure, a migration that re-derives the port identity), the
registry entries move with the entry, so entity ids, their history and the device stay.

Earlier releases did not move them on reconfigure: the entry's registry then holds the old
entities (no longer provided, unavailable) on the old device beside new ones whose entity ids
end in ``_2`` on a second device. :func:`async_adopt_ids` joins such a split too: of one
entity's registry entries the one the user has had longest (its entity id: history,
dashboards, automations) is kept, and the device most of those are on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.typing import UNDEFINED, UndefinedType

from .const import DOMAIN


def _split_unique_id(unique_id: str, ids: Iterable[str]) -> str | None:
    """The description key of an entity's ``unique_id`` made from one of ``ids``, else None."""
    made_from = [known for known in ids if unique_id.startswith(f"{known}_")]
    if not made_from:
        return None
    return unique_id.removeprefix(f"{max(made_from, key=len)}_")


@callback
def async_adopt_ids(
    hass: HomeAssistant,
    entry_id: str,
    old_id: str | None,
    new_id: str,
    connections: set[tuple[str, str]] | None = None,
) -> None:
    """Give entry ``entry_id``'s device and entities the ids that derive from ``new_id``.

    ``old_id`` is the entry's unique id so far; every other id of this integration on the
    entry's devices counts as an earlier link of the same module (a split left by a reconfigure).
    ``connections``: the device's connections of the new link (a Bluetooth address), which
    replace those of their kind. Entities whose unique ids derive from none of these ids are
    left alone. Run it while the entry is not loaded.
    """
    devices = dr.async_get(hass)
    entities = er.async_get(hass)
    mine = [
        device
        for device in dr.async_entries_for_config_entry(devices, entry_id)
        if any(domain == DOMAIN for domain, _ in device.identifiers)
    ]
    ids = {value for device in mine for domain, value in device.identifiers if domain == DOMAIN}
    if old_id is not None:
        ids.add(old_id)

    groups: dict[tuple[str, str], list[er.RegistryEntry]] = {}
    for entity in er.async_entries_for_config_entry(entities, entry_id):
        if (key := _split_unique_id(entity.unique_id, ids)) is not None:
            groups.setdefault((entity.domain, key), []).append(entity)

    kept: dict[str, er.RegistryEntry] = {}
    for (_, key), group in groups.items():
        # The entity id the user has had longest; ``x`` sorts before ``x_2`` at equal times.
        keep, *others = sorted(group, key=lambda entity: (entity.created_at, entity.entity_id))
        for other in others:
            entities.async_remove(other.entity_id)
        kept[key] = keep

    device = _kept_device(mine, kept.values())
    for key, keep in kept.items():
        device_id = keep.device_id
        if device is not None and device_id in {other.id for other in mine}:
            device_id = device.id
        if keep.unique_id != f"{new_id}_{key}":
            entities.async_update_entity(keep.entity_id, new_unique_id=f"{new_id}_{key}", device_id=device_id)
        elif device_id != keep.device_id:
            entities.async_update_entity(keep.entity_id, device_id=device_id)

    if device is None:
        return
    for stale in mine:
        if stale.id != device.id:
            devices.async_remove_device(stale.id)
    identifiers = {(domain, value) for domain, value in device.identifiers if domain != DOMAIN}
    new_connections: set[tuple[str, str]] | UndefinedType = UNDEFINED
    if connections is not None:
        kinds = {kind for kind, _ in connections}
        new_connections = {c for c in device.connections if c[0] not in kinds} | connections
    try:
        devices.async_update_device(
            device.id, new_identifiers=identifiers | {(DOMAIN, new_id)}, new_connections=new_connections
        )
    except dr.DeviceConnectionCollisionError:
        # Another device holds the new address already: the identity moves all the same; the
        # device's connection follows once that device is gone.
        devices.async_update_device(device.id, new_identifiers=identifiers | {(DOMAIN, new_id)})


def _kept_device(mine: list[dr.DeviceEntry], kept: Iterable[er.RegistryEntry]) -> dr.DeviceEntry | None:
    """The device most kept entities are on (the user's area and name), else the oldest."""
    if not mine:
        return None
    by_id = {device.id: device for device in mine}
    counts = Counter(entity.device_id for entity in kept if entity.device_id in by_id)
    if counts:
        return by_id[str(counts.most_common(1)[0][0])]
    return min(mine, key=lambda device: device.created_at)
