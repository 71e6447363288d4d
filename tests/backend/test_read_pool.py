"""The hot read routes run on AICD_API_READ_THREADS threads of their own (backend/api/read_pool.py)."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from pydantic import ValidationError

from backend.api import read_pool
from backend.core.settings import Settings, get_settings


def _concurrency_of(threads: int, calls: int) -> tuple[int, set[str]]:
    """Run `calls` blocking reads at once through `run_read`; the most that overlapped and their threads."""
    lock, running, peak, names = threading.Lock(), [0], [0], set()

    def read() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            names.add(threading.current_thread().name)
        time.sleep(0.2)  # long enough for every thread to start, even on a loaded machine
        with lock:
            running[0] -= 1

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(calls):
                tg.start_soon(read_pool.run_read, read)

    anyio.run(main)
    return peak[0], names


def test_reads_overlap_at_most_the_configured_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    for threads in (1, 2, 3):
        monkeypatch.setenv("AICD_API_READ_THREADS", str(threads))
        get_settings.cache_clear()
        peak, names = _concurrency_of(threads, calls=8)
        assert peak == threads
        assert threading.main_thread().name not in names  # never on the event loop's thread
    get_settings.cache_clear()


def test_read_threads_setting_is_bounded(tmp_path) -> None:
    assert Settings(home=tmp_path).api_read_threads == 2
    for bad in (0, 65):
        with pytest.raises(ValidationError, match="api_read_threads"):
            Settings(home=tmp_path, api_read_threads=bad)
