"""Embedded mode's queues serve jobs as Redis does: by priority (a sweep's children, at SWEEP_PRIORITY, behind
the user's own jobs), then in submission order; closing starts no further job."""

from __future__ import annotations

import threading
from pathlib import Path

from backend.core.settings import Settings
from backend.jobs import SWEEP_PRIORITY, EmbeddedDispatcher, Job


class Recording(EmbeddedDispatcher):
    """Runs nothing: records the order jobs start in; the first job holds its slot until `release`."""

    def __init__(self, settings: Settings):
        self.started: list[Job] = []
        self.release = threading.Event()
        self.first = threading.Event()
        self.done = threading.Semaphore(0)
        super().__init__(settings)

    def _run(self, job: Job) -> None:
        self.started.append(job)
        if len(self.started) == 1:
            self.first.set()
            self.release.wait(30)
        self.done.release()


def test_single_jobs_overtake_a_sweeps_queued_children(tmp_path: Path) -> None:
    d = Recording(Settings(home=tmp_path, embedded_workers=1))
    try:
        d.submit("aicd.train", 1, 1, priority=SWEEP_PRIORITY)  # a sweep's first run takes the one gpu slot
        assert d.first.wait(10)
        for run_id in (2, 3, 4):
            d.submit("aicd.train", run_id, 1, priority=SWEEP_PRIORITY)
        d.submit("aicd.train", 10, 1)  # the user's own run, then an evaluation
        d.submit("aicd.evaluate", 11, 1)
        d.submit("aicd.train", 1, 1, priority=SWEEP_PRIORITY)  # already known: not queued twice
        d.release.set()
        for _ in range(6):
            assert d.done.acquire(timeout=10)
        assert not d.done.acquire(timeout=0.3)
        ids = [job_id for _, job_id, _ in d.started]
        assert ids == [1, 10, 11, 2, 3, 4], d.started
    finally:
        d.release.set()
        d.close()


def test_close_starts_no_queued_job(tmp_path: Path) -> None:
    d = Recording(Settings(home=tmp_path, embedded_workers=1))
    try:
        d.submit("aicd.train", 1, 1)
        assert d.first.wait(10)
        d.submit("aicd.train", 2, 1)
        d.close()
        d.release.set()
        assert d.done.acquire(timeout=10)
        assert not d.done.acquire(timeout=0.5)
        assert [job_id for _, job_id, _ in d.started] == [1]
    finally:
        d.release.set()
