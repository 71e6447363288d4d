"""Checks that processes are gone and that a folder no longer changes, for tests that SIGKILL a parent.

A process whose parent died is reparented; until its new parent reaps it, it is a zombie, which runs nothing
and so counts as gone here.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import psutil


def running(pids: Iterable[int]) -> list[int]:
    """The pids among `pids` that still run (zombies excluded)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def wait_gone(pids: Iterable[int], timeout: float = 60, what: str = "processes") -> None:
    """Poll until none of `pids` runs; fail naming the survivors (and SIGKILL them, so none outlives the test)."""
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while running(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = running(pids)
    if survivors:
        names = [_command(pid) for pid in survivors]
        kill(survivors)
        raise AssertionError(f"{what} still running after their parent was SIGKILLed: {names}")


def _command(pid: int) -> str:
    try:
        return f"{pid}: " + " ".join(psutil.Process(pid).cmdline()[:8])
    except psutil.Error:
        return str(pid)


def kill(pids: Iterable[int]) -> None:
    """SIGKILL whatever of `pids` still runs (test clean-up)."""
    for pid in running(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def descendants(pid: int) -> list[int]:
    """Every process below `pid` now."""
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def snapshot(folder: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of every file under `folder`: equal snapshots mean nothing was written between."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def assert_unchanged(folder: Path, settle: float = 2.0) -> None:
    """Nothing is written into `folder` over `settle` seconds (called once its writers should be gone)."""
    before = snapshot(folder)
    time.sleep(settle)
    assert snapshot(folder) == before, f"{folder} is still being written"
