"""Entity descriptions are Home Assistant's frozen keyword-only dataclasses, as in core."""

from __future__ import annotations

import dataclasses

from homeassistant.helpers.entity import EntityDescription
import pytest

from custom_components.daly_active_balance.binary_sensor import BINARY_SENSORS
from custom_components.daly_active_balance.number import NUMBERS
from custom_components.daly_active_balance.select import SELECTS
from custom_components.daly_active_balance.sensor import INSIGHT_SENSORS, LINK_SENSORS, SENSORS
from custom_components.daly_active_balance.switch import SWITCHES

DESCRIPTIONS: tuple[EntityDescription, ...] = (
    *SENSORS,
    *LINK_SENSORS,
    *INSIGHT_SENSORS,
    *BINARY_SENSORS,
    *NUMBERS,
    *SELECTS,
    *SWITCHES,
)


@pytest.mark.parametrize("description", DESCRIPTIONS, ids=lambda description: description.key)
def test_descriptions_are_frozen_value_dataclasses(description: EntityDescription) -> None:
    """A copy equals the original field by field, and nothing changes a description in place."""
    assert dataclasses.replace(description) == description
    assert dataclasses.replace(description, key="other") != description
    with pytest.raises(dataclasses.FrozenInstanceError):
        description.key = "other"  # type: ignore[misc]
