"""Secrets a link carries, and the one function that takes them out of any text.

A Bluetooth address identifies its owner's dongle in every spelling: ``40:17:10:01:5C:9B``,
``40-17-…``, ``401710015c9b``, BlueZ's ``dev_40_17_10_01_5C_9B`` (bleak's errors on Linux name
the device by its D-Bus path), and inside the dongle's advertised name ``DL-401710015C9B``. Only
the link's own address is replaced, wherever its twelve digits stand (also inside a longer run of
hex): a text that holds those 48 bits by chance is vanishingly rare, while one that holds them
for a reason is a leak. Other hex (another device's address, serial numbers, frames) stays. A
serial bridge URL may carry credentials: an ESPHome proxy's ``?key=…`` (noise PSK) or
``?password=…``, a ``user:password@`` part. :func:`redact` replaces every one of them, in a URL
itself as in an error text or a log line that quotes it, so every place that shows a link
(transport errors and logs, diagnostics, repair placeholders) goes through it.
"""

from __future__ import annotations

from functools import lru_cache
import re
from typing import Final
from urllib.parse import unquote, unquote_plus, urlsplit

#: What a secret is replaced with (Home Assistant's diagnostics use the same text).
REDACTED: Final = "**REDACTED**"

#: URL query parameters whose values are credentials (serialx's ESPHome backend reads ``key``,
#: ``noise_psk`` and ``password``; the rest covers other bridges' spellings).
_SECRET_PARAMETER: Final = re.compile(r"key|psk|pass|pwd|token|secret|auth|cred", re.IGNORECASE)
#: An address's octets may be separated by any of these, or by nothing.
_SEPARATOR: Final = "[:_-]?"
_ADDRESS: Final = re.compile(f"[0-9A-Fa-f]{{2}}(?:{_SEPARATOR}[0-9A-Fa-f]{{2}}){{5}}")
#: A ``user:password@`` part, read without urlsplit (which refuses a malformed host).
_USERINFO_PASSWORD: Final = re.compile(r"://[^/?#@:]*:([^/?#@]*)@")


def is_secret_parameter(name: str) -> bool:
    """True when a URL query parameter called ``name`` holds a credential."""
    return _SECRET_PARAMETER.search(name) is not None


def _query_secrets(query: str) -> set[str]:
    """Every spelling (as typed, percent- and plus-decoded) of the query's credential values."""
    found: set[str] = set()
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if value and is_secret_parameter(unquote_plus(name)):
            found |= {value, unquote(value), unquote_plus(value)}
    return found


@lru_cache(maxsize=64)
def _pattern(link: str) -> re.Pattern[str] | None:
    """What to replace in texts about ``link``, or None when it carries no secret."""
    link = link.strip()
    if _ADDRESS.fullmatch(link):
        octets = re.findall(r"[0-9A-Fa-f]{2}", link)
        return re.compile(_SEPARATOR.join(octets), re.IGNORECASE)
    if "://" not in link:
        return None
    try:
        parts = urlsplit(link)
        query, password = parts.query, parts.password
    except ValueError:  # a malformed host (an entry from before its port was checked)
        query = link.partition("?")[2].partition("#")[0]
        found = _USERINFO_PASSWORD.search(link)
        password = found.group(1) if found else None
    secrets = _query_secrets(query)
    if password:
        secrets |= {password, unquote(password)}
    secrets.discard("")
    if not secrets:
        return None
    # Longest first, so a secret that contains another is replaced whole.
    return re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))


def redact(text: str, link: str) -> str:
    """``text`` with every secret of ``link`` (a Bluetooth address or a URL) replaced by REDACTED."""
    pattern = _pattern(link)
    return text if pattern is None else pattern.sub(REDACTED, text)
