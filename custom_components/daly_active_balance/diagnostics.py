"""Diagnostics: the entry, the module's reports, counters, raw registers, survey and insights.

The module's settings password is a secret: every register the table marks ``secret`` is left
out of the raw dump (by address, derived from the table) and out of the decoded identity (by
key). The Bluetooth address and the serial number are redacted (the serial number's raw words
too). The link's secrets are taken out of every text of the download by ``protocol.redact``: the
Bluetooth address in every spelling (also inside the dongle's name in an error text), and a
bridge URL's credentials; the rest of a serial port or URL is not secret and stays readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Final

from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.const import CONF_ADDRESS
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from aiodalybalancer.errors import DalyError
from aiodalybalancer.redact import redact
from aiodalybalancer.registers import BY_KEY, REGISTERS
from aiodalybalancer.transport_ble import BleTransport

from .const import CONF_CONNECTION, CONNECTION_BLE, DOMAIN
from .coordinator import DalyConfigEntry, DongleReleasedError, Survey
from .issues import ISSUES, issue_id

#: Decoded fields that must never leave Home Assistant (the table's secret registers).
SECRET_KEYS: Final = frozenset(reg.key for reg in REGISTERS if reg.secret)
#: Raw addresses of the secret registers: dropped from the register dump entirely.
SECRET_ADDRESSES: Final = frozenset(
    address for reg in REGISTERS if reg.secret for address in range(reg.address, reg.end)
)
#: Keys whose values are replaced by ``**REDACTED**``.
TO_REDACT: Final = frozenset({CONF_ADDRESS, "serial_number", "unique_id"})
#: Raw addresses of decoded values that are redacted (the serial number's ASCII words).
REDACTED_ADDRESSES: Final = frozenset(
    address for key in TO_REDACT if key in BY_KEY for address in range(BY_KEY[key].address, BY_KEY[key].end)
)


def _raw_dump(words: Mapping[int, int]) -> dict[str, int | str]:
    """Raw words by hex address, in address order: secret registers left out, redacted ones masked."""
    return {
        f"0x{address:04X}": REDACTED if address in REDACTED_ADDRESSES else words[address]
        for address in sorted(words)
        if address not in SECRET_ADDRESSES
    }


def _survey(survey: Survey | None) -> dict[str, Any]:
    """The last register survey, each range's words (secrets as in the raw dump) or its error."""
    if survey is None:
        return {"run": False}
    ranges: list[dict[str, Any]] = []
    for part in survey.ranges:
        found: dict[str, Any] = {"start": f"0x{part.start:04X}", "count": part.count}
        if part.error is not None:
            found["error"] = part.error
        else:
            found["registers"] = _raw_dump(
                dict(zip(range(part.start, part.start + part.count), part.words, strict=True))
            )
        ranges.append(found)
    return {"run": True, "time": survey.time.isoformat(), "ranges": ranges}


def _scrub(value: Any, link: str) -> Any:
    """``value`` with the link's secrets taken out of every string in it (keys included)."""
    if isinstance(value, str):
        return redact(value, link)
    if isinstance(value, Mapping):
        return {_scrub(key, link): _scrub(item, link) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item, link) for item in value]
    return value


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: DalyConfigEntry) -> dict[str, Any]:
    """Return diagnostics for a config entry (reads the module once more if it answers)."""
    coordinator = entry.runtime_data
    client = coordinator.client
    ble = entry.data.get(CONF_CONNECTION) == CONNECTION_BLE

    # The words the polls have read so far, taken before the fresh read below adds to them.
    last_read = _raw_dump(client.raw)
    fresh: dict[str, Any]
    try:
        fresh = {"answered": True, "registers": _raw_dump(await coordinator.async_read_raw())}
    except DongleReleasedError as err:
        # Connecting now would throw the phone app out: the download says why nothing was read.
        fresh = {"answered": False, "dongle_released_until": err.until.isoformat()}
    except DalyError as err:
        fresh = {"answered": False, "error": f"{type(err).__name__}: {err}"}

    identity = {key: value for key, value in asdict(coordinator.identity).items() if key not in SECRET_KEYS}
    data = coordinator.data
    issues = ir.async_get(hass)
    active_issues = {
        issue: dict(found.translation_placeholders or {})
        for issue in ISSUES
        if (found := issues.async_get_issue(DOMAIN, issue_id(entry.entry_id, issue))) is not None
    }

    link: dict[str, Any] = {"ble": ble, "open": client.transport.is_open, "protocol": client.family}
    if isinstance(client.transport, BleTransport):
        link["connects"] = client.transport.connects
        link["keep_connected"] = client.transport.keep_connected
        link["rssi"] = coordinator.rssi

    diagnostics: dict[str, Any] = {
        "entry": {
            "title": entry.title,
            "unique_id": entry.unique_id,
            "data": dict(entry.data),
            "options": dict(entry.options),
        },
        "link": link,
        "coordinator": {
            "last_update_success": coordinator.last_update_success,
            "last_error": str(coordinator.last_exception) if coordinator.last_exception else None,
            "update_interval": coordinator.update_interval.total_seconds() if coordinator.update_interval else None,
            "settings_every": coordinator.settings_every,
            "poll_success_share": coordinator.poll_success_share,
            "last_poll_error": coordinator.last_error,
        },
        "identity": identity,
        "status": asdict(data.status) if data is not None else None,
        "settings": asdict(coordinator.settings) if coordinator.settings is not None else None,
        "client_stats": asdict(client.stats),
        "issues": active_issues,
        "raw_registers": {"last_read": last_read, "fresh_read": fresh},
        "register_survey": _survey(coordinator.last_survey),
        "insights": coordinator.insights.diagnostics(),
    }
    # A BLE entry's unique id is its Bluetooth address; a serial entry's is its port (not secret).
    scrubbed: dict[str, Any] = _scrub(
        async_redact_data(diagnostics, TO_REDACT if ble else TO_REDACT - {"unique_id"}), coordinator.link
    )
    return scrubbed
