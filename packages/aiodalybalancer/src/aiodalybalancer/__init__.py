"""aiodalybalancer: asyncio access to the DALY Smart Active Balance Module.

Frames and CRC, the register table and its codec, the stream re-assembler, the legacy A5
family, the serial and Bluetooth transports and the client run on their own: nothing here
imports Home Assistant. The simulator, the Bluetooth stand-in and the ``daly-balancer``
command-line tool live in ``aiodalybalancer.tools``.

The Bluetooth transport (``aiodalybalancer.transport_ble.BleTransport``) is imported on first
use, so that reading a module over a serial link never loads bleak.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import DalyClient, Poll, ProbeResult, SurveyRange
from .errors import (
    BadAnswerError,
    ConnectTimeoutError,
    DalyConnectionError,
    DalyError,
    DalyTimeoutError,
    ExceptionResponseError,
    FrameError,
    NotABalancerError,
    UnexpectedAnswerError,
    UnreadableAnswerError,
    ValueOutOfRangeError,
    WriteNotAcceptedError,
)
from .models import Identity, ProtocolFamily, Settings, Status
from .registers import BY_KEY, REGISTERS, Register, register
from .transport import SerialTransport, Transport

if TYPE_CHECKING:
    from .transport_ble import BleTransport

__version__ = "0.1.0"

__all__ = [
    "BY_KEY",
    "REGISTERS",
    "BadAnswerError",
    "BleTransport",
    "ConnectTimeoutError",
    "DalyClient",
    "DalyConnectionError",
    "DalyError",
    "DalyTimeoutError",
    "ExceptionResponseError",
    "FrameError",
    "Identity",
    "NotABalancerError",
    "Poll",
    "ProbeResult",
    "ProtocolFamily",
    "Register",
    "SerialTransport",
    "Settings",
    "Status",
    "SurveyRange",
    "Transport",
    "UnexpectedAnswerError",
    "UnreadableAnswerError",
    "ValueOutOfRangeError",
    "WriteNotAcceptedError",
    "__version__",
    "register",
]


def __getattr__(name: str) -> Any:
    """``BleTransport`` on first use: bleak is only loaded by those who talk Bluetooth."""
    if name == "BleTransport":
        from .transport_ble import BleTransport  # noqa: PLC0415

        return BleTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
