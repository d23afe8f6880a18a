"""Entity descriptions: built like frozen keyword-only dataclasses, without a generated __init__."""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.const import EntityCategory
import pytest

from custom_components.daly_active_balance.entity import entity_description
from custom_components.daly_active_balance.number import NUMBERS, DalyNumberEntityDescription
from custom_components.daly_active_balance.sensor import DalySensorEntityDescription
from custom_components.daly_active_balance.writes import SLEEP_TIME


def _number(**extra: Any) -> DalyNumberEntityDescription:
    return DalyNumberEntityDescription(
        key="probe", native_max_value=7.0, setting=SLEEP_TIME, value_fn=lambda s: s.sleep_time, **extra
    )


def test_fields_of_home_assistant_and_of_the_subclass_are_set() -> None:
    probe = _number()
    assert (probe.key, probe.native_max_value, probe.setting) == ("probe", 7.0, SLEEP_TIME)
    # Defaults of Home Assistant's fields, of the shared base and of the subclass.
    assert probe.native_min_value is None
    assert probe.translation_key is None
    assert probe.factor == 1.0
    assert probe.range_fn is None
    assert probe.exists_fn(None) is True  # type: ignore[arg-type]


def test_descriptions_are_frozen_and_replace_works() -> None:
    probe = _number(factor=1000.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        probe.factor = 1.0  # type: ignore[misc]
    copy = dataclasses.replace(probe, native_max_value=9.0)
    assert (copy.native_max_value, copy.factor, copy.setting) == (9.0, 1000.0, SLEEP_TIME)


def test_a_missing_or_unknown_field_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="needs value_fn"):
        DalySensorEntityDescription(key="probe")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no_such_field"):
        _number(no_such_field=1)


def test_no_generated_init_and_identity_equality() -> None:
    """The point of the decorator: Python compiles no __init__ for these classes at start-up."""
    assert DalyNumberEntityDescription.__init__.__qualname__ == "DalyNumberEntityDescription.__init__"
    assert "__create_fn__" not in DalyNumberEntityDescription.__init__.__code__.co_qualname
    first, second = _number(), _number()
    assert first == first  # noqa: PLR0124  # identity: the same description
    assert first != second
    assert all(description.setting.register.writable for description in NUMBERS)


def test_a_subclass_may_change_the_default_of_a_home_assistant_field() -> None:
    """Home Assistant's __init__ would apply its own default; the subclass's wins, as in a dataclass."""

    @entity_description
    class Diagnostic(DalySensorEntityDescription):
        entity_category: EntityCategory | None = EntityCategory.DIAGNOSTIC
        suggested_display_precision: int | None = 2

    probe = Diagnostic(key="probe", value_fn=lambda _data: None)
    assert (probe.entity_category, probe.suggested_display_precision) == (EntityCategory.DIAGNOSTIC, 2)
    assert probe.has_entity_name is False  # untouched defaults stay Home Assistant's
    given = Diagnostic(key="probe", value_fn=lambda _data: None, entity_category=None)
    assert given.entity_category is None


def test_unsupported_dataclass_features_are_refused() -> None:
    with pytest.raises(TypeError, match="__post_init__"):

        @entity_description
        class Checked(DalySensorEntityDescription):
            def __post_init__(self) -> None:
                pass
