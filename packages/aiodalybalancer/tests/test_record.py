"""The shared record base: values compare, hash, show and copy by their ``__slots__``."""

from __future__ import annotations

import pytest

from aiodalybalancer.exchange import ClientStats
from aiodalybalancer.frames import ReadRequest, WriteMultipleAck
from aiodalybalancer.models import Identity, Settings


def test_records_of_one_class_compare_by_value() -> None:
    assert ReadRequest(0, 62) == ReadRequest(0, 62)
    assert ReadRequest(0, 62) != ReadRequest(0, 61)
    assert hash(ReadRequest(0, 62)) == hash(ReadRequest(0, 62))
    assert len({ReadRequest(0, 62), ReadRequest(0, 62), ReadRequest(1, 62)}) == 2


def test_records_of_other_classes_never_compare_equal() -> None:
    """Same attribute values, other meaning: a read request is no write acknowledgement."""
    assert ReadRequest(0, 62) != WriteMultipleAck(0, 62)
    assert ReadRequest(0, 62) != (0, 62)


def test_repr_names_the_class_and_hides_secrets() -> None:
    assert repr(ReadRequest(0x80, 41)) == "ReadRequest(start=128, count=41)"
    shown = repr(Identity(serial_number="A1", password="123456"))
    assert "123456" not in shown
    assert "serial_number='A1'" in shown


def test_as_dict_and_replace_follow_the_slots() -> None:
    settings = Settings(sleep_time=3600, battery_type="lifepo4")
    assert list(settings.as_dict())[:3] == ["string_count", "battery_type", "sleep_time"]
    changed = settings.replace(sleep_time=65535)
    assert changed.sleep_time == 65535
    assert changed.battery_type == "lifepo4"
    assert settings.sleep_time == 3600  # the original is untouched
    with pytest.raises(TypeError):
        settings.replace(no_such_setting=1)


def test_counters_change_and_are_not_hashable() -> None:
    stats = ClientStats()
    stats.requests += 1
    assert stats == ClientStats(requests=1)
    assert stats.as_dict()["requests"] == 1
    with pytest.raises(TypeError):
        hash(stats)


def test_derived_attributes_stay_out_of_comparison_and_copies() -> None:
    """A table row's decimals and a block's registers follow from the rest."""
    from aiodalybalancer.registers import BY_KEY, LIVE

    reg = BY_KEY["sleep_time"]
    assert "decimals" not in repr(reg)
    copy = reg.replace(writable=False)
    assert (copy.writable, copy.decimals, copy.key) == (False, reg.decimals, "sleep_time")
    assert LIVE.replace(name="again").registers == LIVE.registers
    assert hash(LIVE) == hash(LIVE.replace())
    assert "registers" not in LIVE.as_dict()


def test_a_record_equals_itself_even_holding_nan() -> None:
    from aiodalybalancer.models import Status

    status = Status(cell_voltages=(), pack_voltage=float("nan"))
    assert status == status  # noqa: PLR0124  # the point: NaN != NaN, yet the record is itself
