"""Errors of the protocol layer. Every failure the layer reports is a ``DalyError``."""

from __future__ import annotations


class DalyError(Exception):
    """Base class of everything this layer raises on purpose."""


class FrameError(DalyError):
    """A frame is malformed: wrong length, wrong CRC/checksum, unknown function."""


class DalyConnectionError(DalyError):
    """The transport cannot be opened or was lost."""


class ConnectTimeoutError(DalyConnectionError):
    """The link was not established in time: the bridge did not accept the connection."""

    def __init__(self, link: str, timeout: float) -> None:
        super().__init__(f"{link} did not accept a connection within {timeout:g} s")
        self.timeout = timeout


class DalyTimeoutError(DalyError):
    """The module did not answer in time (asleep, unplugged or out of range)."""


class BadAnswerError(DalyError):
    """Something answered, but nothing that answers the request came (see the subclasses)."""


class UnreadableAnswerError(BadAnswerError):
    """Bytes came back, but no valid frame in them: noise, a wrong baud rate, another device."""


class UnexpectedAnswerError(BadAnswerError):
    """Valid frames came back, but none that fits the request (the wrong register count...)."""


class ExceptionResponseError(DalyError):
    """The module answered with a Modbus exception frame."""

    def __init__(self, function: int, code: int) -> None:
        super().__init__(f"module answered function 0x{function:02X} with exception code {code}")
        self.function = function
        self.code = code


class NotABalancerError(DalyError):
    """Something answered, but it does not look like a DALY active balancer."""


class ValueOutOfRangeError(DalyError, ValueError):
    """A value for a setting is outside what the register table allows. Nothing was sent."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(f"{key}: {value!r} refused: {reason}")
        self.key = key
        self.value = value
        self.reason = reason


class WriteNotAcceptedError(DalyError):
    """A write was sent but the module's echo or read-back shows it did not take."""

    def __init__(self, key: str, wanted: object, actual: object) -> None:
        super().__init__(f"{key}: wrote {wanted!r}, module reports {actual!r}")
        self.key = key
        self.wanted = wanted
        self.actual = actual
