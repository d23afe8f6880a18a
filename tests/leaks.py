"""What a test (or the soak) checks for after an unload: descriptors and tasks left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import os
from typing import Any


def open_fds() -> dict[int, str]:
    """This process's open descriptors and what they point at."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return found


def live_tasks() -> set[asyncio.Task[Any]]:
    """Tasks still running, other than the caller's own."""
    return {task for task in asyncio.all_tasks() if not task.done() and task is not asyncio.current_task()}


async def until(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    """Let the loop run (real I/O) until ``condition()`` holds; False when it never did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
