"""In-memory transports for client tests: every byte still goes through the real frames."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
import selectors
from typing import Any, override

from aiodalybalancer.errors import DalyConnectionError
from aiodalybalancer.tools.simulator import SimulatedBalancer
from aiodalybalancer.transport import Transport

Responder = Callable[[bytes], Sequence[bytes]]


class ScriptedTransport(Transport):
    """A link whose far end is a function from request bytes to reply chunks.

    Records every byte written, so a test can prove what did (or did not) reach the wire.
    ``echo`` makes it behave like a half-duplex adapter that sends the request back first.
    """

    def __init__(self, respond: Responder, *, echo: bool = False, supports_a5: bool = False) -> None:
        super().__init__()
        self.respond = respond
        self.echo = echo
        self.supports_a5 = supports_a5
        self.writes: list[bytes] = []
        self.opens = 0
        self.closes = 0
        self.fail_open = False
        self._open = False

    @property
    @override
    def description(self) -> str:
        return "scripted"

    @property
    @override
    def is_open(self) -> bool:
        return self._open

    @override
    async def open(self) -> None:
        if self._open:
            return
        if self.fail_open:
            raise DalyConnectionError("cannot open scripted link")
        self._open = True
        self.opens += 1

    @override
    async def write(self, data: bytes) -> None:
        if not self._open:
            raise DalyConnectionError("scripted link closed")
        self.writes.append(data)
        asyncio.get_running_loop().call_soon(self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if self.echo:
            self._received(data)
        for chunk in self.respond(data):
            self._received(chunk)

    def drop_link(self) -> None:
        """The far end vanished (like a BLE link lost mid-poll)."""
        self._open = False
        self._lost(ConnectionResetError("link dropped"))

    @override
    async def close(self) -> None:
        if self._open:
            self.closes += 1
        self._open = False


class SimTransport(ScriptedTransport):
    """An in-memory link to a real simulator, honouring its reply delays and split chunks."""

    def __init__(self, sim: SimulatedBalancer, *, echo: bool = False, supports_a5: bool = False) -> None:
        super().__init__(lambda _data: (), echo=echo, supports_a5=supports_a5)
        self.sim = sim

    @override
    def _deliver(self, data: bytes) -> None:
        if self.echo:
            self._received(data)
        loop = asyncio.get_running_loop()
        for reply in self.sim.receive(data):
            at = reply.delay
            for chunk in reply.chunks:
                loop.call_later(at, self._received_if_open, chunk)
                at += 0.005

    def _received_if_open(self, chunk: bytes) -> None:
        if self._open:
            self._received(chunk)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to its next timer instead of waiting for it.

    For links without real I/O (the scripted transport): a scenario of many timeouts runs in
    no time, and the order of events depends on the scenario alone, never on the machine.
    """

    def __init__(self) -> None:
        self.now = 0.0
        loop = self

        class _Selector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
            def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
                loop.now += timeout or 0.0
                return super().select(0)

        super().__init__(_Selector())

    def time(self) -> float:
        return self.now


def run_in_virtual_time[T](scenario: Coroutine[Any, Any, T]) -> T:
    """Run ``scenario`` to its end on a ``VirtualTimeLoop`` (its clock starts at 0)."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(scenario)
    finally:
        loop.close()
