"""Transports: byte pipes between the client and the module.

A transport knows nothing about frames. It opens a link, writes bytes, hands every received
chunk to a callback, and reports when the link is lost. The client does the rest, so serial,
TCP bridges and BLE share one request/response path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
from collections.abc import Callable
import logging
from typing import Final, override

import serialx

from .errors import ConnectTimeoutError, DalyConnectionError
from .redact import redact

_LOGGER = logging.getLogger(__name__)

#: The module's UART (and the BLE dongle's) line settings: 9600 baud, 8N1 (reference §2.2).
BAUDRATE: Final = 9600
#: Bits one byte takes on that UART at 8N1: start bit, 8 data bits, stop bit.
BITS_PER_BYTE: Final = 10
#: Seconds opening a link may take as a whole: a bridge whose TCP connect never completes
#: (packets dropped) or that never answers the RFC 2217 negotiation is given up on after this.
CONNECT_TIMEOUT: Final = 5.0


def wire_time(size: int, baud: int = BAUDRATE) -> float:
    """Seconds ``size`` bytes take to cross the UART at ``baud``."""
    return size * BITS_PER_BYTE / baud


DataCallback = Callable[[bytes], None]
LostCallback = Callable[[Exception | None], None]


class Transport(ABC):
    """A byte pipe to one module."""

    #: Whether A5 frames are worth trying when D2 gets no answer (only on wired links).
    supports_a5: bool = False

    def __init__(self) -> None:
        """Start closed."""
        self._on_data: DataCallback | None = None
        self._on_lost: LostCallback | None = None

    @property
    @abstractmethod
    def description(self) -> str:
        """A short human-readable name of the link (port, URL or address)."""

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """True while the link is up."""

    def attach(self, on_data: DataCallback, on_lost: LostCallback) -> None:
        """Set where received bytes and link loss go."""
        self._on_data = on_data
        self._on_lost = on_lost

    def _received(self, data: bytes) -> None:
        if self._on_data is not None and data:
            self._on_data(data)

    def _lost(self, exc: Exception | None) -> None:
        if self._on_lost is not None:
            self._on_lost(exc)

    @abstractmethod
    async def open(self) -> None:
        """Open the link; raises ``DalyConnectionError``."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Send bytes; raises ``DalyConnectionError`` when the link is down."""

    @abstractmethod
    async def close(self) -> None:
        """Close the link (idempotent)."""

    async def release(self) -> None:  # noqa: B027 - optional hook
        """Called after each poll; a BLE transport may disconnect here to free the link."""

    def hold_reads(self, seconds: float) -> None:  # noqa: B027 - optional hook
        """Nothing complete can arrive for ``seconds``: a transport may leave data unread until then.

        A reply crosses the module's UART a few bytes at a time, and every piece handed over
        wakes the event loop; reading what has piled up once the reply can be complete costs
        one wake-up instead (a serial line keeps the bytes in the OS buffer meanwhile).
        ``seconds`` <= 0 ends a hold at once: what arrived meanwhile is read now.
        """


class _SerialProtocol(asyncio.Protocol):
    """One serial connection's callbacks; once its link is replaced, they reach nobody.

    A closed link's loss can be reported after the next link opened (serialx closes in an
    executor, and a close that took too long was given up on): it must neither end the new
    link nor hand over its last bytes.
    """

    def __init__(self, owner: SerialTransport, closed: asyncio.Future[None]) -> None:
        self._owner = owner
        self._closed = closed

    @override
    def data_received(self, data: bytes) -> None:
        if self._owner._protocol is self:
            self._owner._received(data)

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)
        if self._owner._protocol is self:
            self._owner._connection_lost(exc)


class SerialTransport(Transport):
    """A serial line through ``serialx``: a device path or a URL.

    URLs: ``socket://host:port`` (raw TCP serial bridges), ``rfc2217://host:port`` and, inside
    Home Assistant, ``esphome://`` (ESPHome serial proxies; HA registers that scheme).
    """

    supports_a5 = True

    def __init__(self, port: str, *, baudrate: int = BAUDRATE, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        """Remember where to connect; nothing is opened yet."""
        super().__init__()
        self.port = port
        self._baudrate = baudrate
        self._connect_timeout = connect_timeout
        #: The port as shown in errors and logs: a URL's credentials are redacted.
        self._description = redact(port, port)
        self._transport: asyncio.BaseTransport | None = None
        #: The callbacks of the current link; those of an earlier link are ignored.
        self._protocol: _SerialProtocol | None = None
        self._closed: asyncio.Future[None] | None = None
        self._resume: asyncio.TimerHandle | None = None

    @property
    @override
    def description(self) -> str:
        return self._description

    @property
    @override
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    @override
    async def open(self) -> None:
        if self.is_open:
            return
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()
        protocol = _SerialProtocol(self, closed)
        try:
            # serialx bounds each step of a network connect by ``connect_timeout`` (RFC 2217 has
            # three); the outer bound holds for the whole open, whatever the backend.
            async with asyncio.timeout(self._connect_timeout):
                transport, _ = await serialx.create_serial_connection(
                    loop,
                    lambda: protocol,
                    self.port,
                    baudrate=self._baudrate,
                    connect_timeout=self._connect_timeout,
                )
        except TimeoutError as err:
            raise ConnectTimeoutError(self.description, self._connect_timeout) from err
        except Exception as err:  # serialx's URL backends (esphome, rfc2217) raise their own types
            raise DalyConnectionError(f"cannot open {self.description}: {redact(str(err), self.port)}") from err
        self._transport = transport
        self._protocol = protocol
        self._closed = closed
        _LOGGER.debug("opened serial link %s", self.description)

    @override
    async def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise DalyConnectionError(f"{self.description} is not open")
        assert isinstance(transport, asyncio.WriteTransport)
        try:
            transport.write(data)
        except (OSError, serialx.SerialException) as err:
            raise DalyConnectionError(f"write to {self.description} failed: {err}") from err

    @override
    def hold_reads(self, seconds: float) -> None:
        if seconds <= 0:
            if self._resume is not None:
                self._stop_hold()
                self._resume_reading()
            return
        transport = self._transport
        if not isinstance(transport, asyncio.ReadTransport) or transport.is_closing():
            return
        try:
            transport.pause_reading()
        except NotImplementedError:  # a URL backend that cannot pause: read as it comes
            return
        self._stop_hold()
        self._resume = asyncio.get_running_loop().call_later(seconds, self._resume_reading)

    def _resume_reading(self) -> None:
        self._resume = None
        transport = self._transport
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
            transport.resume_reading()

    def _stop_hold(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None

    def _connection_lost(self, exc: Exception | None) -> None:
        self._stop_hold()
        self._transport = self._protocol = None
        _LOGGER.debug("serial link %s lost: %s", self.description, exc)
        self._lost(exc)

    @override
    async def close(self) -> None:
        self._stop_hold()
        transport, self._transport = self._transport, None
        self._protocol = None
        closed, self._closed = self._closed, None
        if transport is None:
            return
        transport.close()
        # Wait until the port is really released so no descriptor or socket outlives us.
        if closed is not None:
            try:
                await asyncio.wait_for(asyncio.shield(closed), 2)
            except TimeoutError:
                _LOGGER.debug("serial link %s did not report closing", self.description)
