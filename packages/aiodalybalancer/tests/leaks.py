"""What a transport test checks for after a close: descriptors left behind.

The repository's tests/leaks.py has the same helpers for the integration's tests; the library's
tests stand on their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import os


def open_fds() -> dict[int, str]:
    """This process's open descriptors and what they point at."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return found


async def until(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    """Let the loop run (real I/O) until ``condition()`` holds; False when it never did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
