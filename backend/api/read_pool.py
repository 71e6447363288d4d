"""A thread pool of their own for the hot read routes: the run and generation lists and compare.

These routes are Python CPU work (rows to JSON) around a short database wait. In anyio's default pool (40
threads) the 8 concurrent requests a process gets from 16 clients run on 8 threads that take turns holding the
GIL, so every request is interleaved with the others and the unlucky ones finish late. Two threads keep a
database wait overlapped with the other request's work and serve the rest in arrival order (anyio's limiter is
FIFO). In bench/results/api.md's A/B at 16 clients, p95 of list runs was 35–50 ms on 2 threads and 50–54 ms on
40. A pool of their own (a bulkhead) also means a slow upload or export, which stays in the default pool, cannot
hold them up.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from backend.core.settings import get_settings

T = TypeVar("T")

_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = weakref.WeakKeyDictionary()
"""One limiter per event loop (a limiter belongs to the loop it was made on; tests start several)."""


def read_limiter() -> CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = CapacityLimiter(get_settings().api_read_threads)
    return limiter


async def run_read(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` on one of AICD_API_READ_THREADS threads (blocking database reads stay off the event loop)."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=read_limiter())
