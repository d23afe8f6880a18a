"""A TCP bridge on the loopback that never accepts a connection (its SYNs are dropped).

A listening socket whose accept queue is full (backlog 0, one connection already waiting, never
accepted) makes the kernel drop every further SYN: a connect to it neither completes nor fails,
as with a bridge whose packets are dropped on the way. Only 127.0.0.1 is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import socket


@contextmanager
def unaccepting_port() -> Iterator[int]:
    """A loopback port where a TCP connect hangs until the caller gives up."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = int(server.getsockname()[1])
        fillers = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
        try:
            for filler in fillers:  # the first fills the queue, the second's SYN already hangs
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            yield port
        finally:
            for filler in fillers:
                filler.close()
