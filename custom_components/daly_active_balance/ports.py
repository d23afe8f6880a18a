"""Serial ports and bridge URLs: which are accepted, how they are spelt, and which are the same port.

Accepted are what Home Assistant's serial port list offers and serialx opens:

* device paths (``/dev/ttyUSB0``, ``/dev/serial/by-id/…``) and Windows ``COMn`` ports;
* ``esphome-hass://esphome/<entry id>?port_name=…``: an ESPHome serial proxy as Home Assistant's
  ESPHome integration lists it (through the device's existing API connection);
* ``esphome://host[:port]?port_name=…[&key=…]``: an ESPHome serial proxy reached directly;
* ``socket://host:port`` / ``tcp://host:port`` (raw TCP bridges) and ``rfc2217://host:port``.

:func:`canonical_port` is what an entry stores: trimmed, the URL's scheme and host in lower case
(``localhost`` as ``127.0.0.1``, where a local bridge listens; ``tcp://`` as ``socket://``, which
serialx opens the same way), its port as a plain number, no trailing slash. A host must be an IP
address or a name DNS can hold, a port 1–65535. :func:`port_id` is what identifies the port (the
entry's unique id): the canonical URL without its credentials and with one spelling of its
host (a name in IDNA, so ``bücher.example`` and ``xn--bcher-kva.example`` are one host, without
the trailing dot of a fully-qualified name; an IPv4-mapped IPv6 address as the IPv4 address),
or for a device path the one name every path to that device shares.
"""

from __future__ import annotations

from ipaddress import IPv6Address, ip_address
import os
import re
from typing import Final
from urllib.parse import SplitResult, urlsplit, urlunsplit

from homeassistant.components import usb

from aiodalybalancer.redact import is_secret_parameter

#: URL schemes serialx opens that Home Assistant offers or users type (see the module text).
URL_SCHEMES: Final = frozenset({"socket", "tcp", "rfc2217", "esphome", "esphome-hass"})
#: Schemes whose URL is a network address: host and port are required.
_HOST_PORT_SCHEMES: Final = frozenset({"socket", "tcp", "rfc2217"})
#: Ports a scheme implies when the URL leaves them out (serialx's ESPHome API default).
_DEFAULT_PORTS: Final = {"esphome": 6053}
#: Schemes serialx opens alike, by the one an entry stores.
_SAME_SCHEME: Final = {"tcp": "socket"}
_COM: Final = re.compile(r"COM\d+", re.IGNORECASE)


class InvalidPortError(ValueError):
    """Not a device path or an accepted serial URL."""


def _host(host: str, *, bracketed: bool = False, identity: bool = False) -> str:
    """A host as a URL writes it: IPv6 bracketed, ``localhost`` as IPv4.

    ``identity``: as the port's identity names it, one spelling for one host: a name in IDNA,
    without the trailing dot of a fully-qualified name, an IPv4-mapped IPv6 address as IPv4.
    ``InvalidPortError`` when it is neither an address nor a name DNS can hold. ``bracketed``:
    the URL put the host in brackets, where only an IPv6 address may stand.
    """
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ip_address(host)
    except ValueError:
        if bracketed:
            raise InvalidPortError(host) from None
        try:
            # Python's codec (IDNA 2003) refuses empty labels and labels over 63 characters.
            ascii_name = host.encode("idna").decode("ascii")
        except UnicodeError as err:
            raise InvalidPortError(host) from err
        return ascii_name.lower().removesuffix(".") if identity else host
    if bracketed != isinstance(address, IPv6Address):
        raise InvalidPortError(host)
    if isinstance(address, IPv6Address):
        if identity and address.ipv4_mapped is not None:
            return address.ipv4_mapped.compressed
        return f"[{address.compressed}]"
    return address.compressed


def _split(port: str) -> tuple[SplitResult, str, int | None]:
    """A URL's parts, host and port number; ``InvalidPortError`` when they cannot be read."""
    try:
        parts = urlsplit(port)
        host, number = parts.hostname, parts.port
    except ValueError as err:  # a port that is not a number or out of range, a broken IPv6 host
        raise InvalidPortError(port) from err
    if not host or number == 0:
        raise InvalidPortError(port)
    return parts, host, number


def canonical_port(port: str) -> str:
    """The port as an entry stores it; raises ``InvalidPortError`` when it is not accepted."""
    port = port.strip()
    if "://" not in port:
        if _COM.fullmatch(port):
            return port.upper()
        if not port.startswith("/"):
            raise InvalidPortError(port)
        return port
    parts, host, number = _split(port)
    scheme = parts.scheme.lower()
    scheme = _SAME_SCHEME.get(scheme, scheme)
    if scheme not in URL_SCHEMES:
        raise InvalidPortError(port)
    if scheme in _HOST_PORT_SCHEMES and number is None:
        raise InvalidPortError(port)
    if scheme == "esphome-hass" and (not parts.path.strip("/") or "port_name=" not in parts.query):
        raise InvalidPortError(port)
    netloc = _host(host, bracketed="[" in parts.netloc)
    if number is not None and number != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{number}"
    if "@" in parts.netloc:
        netloc = f"{parts.netloc.rpartition('@')[0]}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def port_id(port: str) -> str:
    """What identifies ``port`` (a canonical port): the same for every spelling of one port.

    A URL loses its credentials (they must never be part of a unique id) and names its host in
    one spelling (see the module text). A device path is resolved to its device, named by the ``/dev/serial/by-id`` link to it
    when there is one (stable across reboots; Home Assistant's usb helper finds it), else by the
    device itself. Reads the file system: run it in an executor. ``InvalidPortError`` for a URL
    no rule accepts (an entry from before the rules).
    """
    if "://" in port:
        parts, host, number = _split(port)
        netloc = _host(host, bracketed="[" in parts.netloc, identity=True)
        if number is not None:
            netloc = f"{netloc}:{number}"
        query = "&".join(
            pair for pair in parts.query.split("&") if pair and not is_secret_parameter(pair.partition("=")[0])
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    if not port.startswith("/"):
        return port
    return usb.get_serial_by_id(os.path.realpath(port))


def esphome_entry_id(port: str) -> str | None:
    """The ESPHome config entry an ``esphome-hass://`` port goes through, else None."""
    parts = urlsplit(port)
    return (parts.path.strip("/") or None) if parts.scheme == "esphome-hass" else None


def port_label(port: str, esphome_device: str | None = None) -> str:
    """A short name of a canonical port for titles: ``ttyUSB0``, ``192.0.2.10:8899``, ``Garage uart0``.

    Credentials never appear. ``esphome_device`` names the ESPHome device an ``esphome-hass://``
    port goes through (Home Assistant knows it, the URL only has its entry id).
    """
    if "://" not in port:
        folder, name = os.path.split(port)
        # /dev/pts/3 is "pts/3": a bare number says nothing.
        return f"{os.path.basename(folder)}/{name}" if name.isdigit() else name or port
    parts = urlsplit(port)
    port_name = next(
        (value for name, _, value in (p.partition("=") for p in parts.query.split("&")) if name == "port_name"), ""
    )
    where = (esphome_device or "ESPHome") if parts.scheme == "esphome-hass" else parts.netloc.rpartition("@")[2]
    return f"{where} {port_name}" if port_name else where
