"""Owning one job while it runs: claim it, heart-beat, notice cancel requests, record the outcome.

Every status write is guarded by (id, attempt), and only a `queued` row can be claimed: a message redelivered
after its worker died (the job is `lost`, or was resumed under a new attempt) finds nothing to claim and does
nothing; `POST …/resume` queues a new attempt. Heartbeats are stamped with the database's clock (`now()`), the
same one the API's reaper compares them with, so clock skew between hosts cannot fake a dead or live worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from sqlalchemy import func, select, update

from aicd.progress import Cancelled
from backend.core.settings import get_settings
from backend.db import session_scope
from backend.models import JobStatus

log = logging.getLogger("worker")

CLAIMABLE = (JobStatus.queued.value,)
SHUTDOWN = threading.Event()
"""Set when the worker process is asked to stop (SIGTERM): running jobs checkpoint and end as `failed`."""
NODE: dict[str, str] = {}
"""`name`: the Celery node name (`gpu@host`, `cpu@host`), set by `worker.celery_app` when the worker starts."""


def worker_name() -> str:
    """What a job's `worker` column says: the Celery node (so gpu/cpu workers are told apart) and the pid."""
    return f"{NODE.get('name') or socket.gethostname()}:{os.getpid()}"


class JobContext:
    """Heart-beats from a background thread (so long steps never look like a dead worker) and reads the
    cancel flag on the same beat, so `should_stop()` costs nothing inside the training loop.

    It is the job's `aicd.progress.Progress`: every phase (export, loading, episodes, training, evaluation,
    annotation) calls `phase()`/`advance()` and `check()` (raises `Cancelled` on cancel, shutdown or stall, read
    from memory). The same thread is a stall watchdog: a job whose phase has not advanced for
    `AICD_STALL_TIMEOUT_S` is failed with a message naming the phase, even if its code never checks again.
    """

    def __init__(self, model: type, job_id: int, attempt: int):
        self.model = model
        self.job_id = job_id
        self.attempt = attempt
        self.settings = get_settings()
        self.cancelled = threading.Event()
        self.orphaned = threading.Event()  # the row no longer belongs to this attempt (reaped, resumed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_beat: Any = None  # optional extra work on each beat (a sweep keeps its current run alive)
        self.current_phase = "starting"
        self.phase_total: int | None = None
        self.phase_done = 0
        self._progress_at = time.monotonic()
        self.stalled: str | None = None  # the stall message, once the watchdog has failed the job

    # ---- aicd.progress.Progress
    def phase(self, name: str, total: int | None = None) -> None:
        log.info("%s %s: phase %s", self.model.__tablename__, self.job_id, name)
        self.current_phase, self.phase_total, self.phase_done = name, total, 0
        self._progress_at = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.phase_done += n
        self._progress_at = time.monotonic()

    def check(self) -> None:
        """Raise `Cancelled` if the job must stop (cancel, shutdown, stall, or another attempt owns it)."""
        if self.should_stop():
            raise Cancelled(self.stopped_message() or "stopped")

    def _watch_stall(self) -> None:
        """Fail the job, naming the phase, when it has not advanced for `stall_timeout_s` (0: never)."""
        limit = self.settings.stall_timeout_s
        idle = time.monotonic() - self._progress_at
        if not limit or idle < limit or self.stalled is not None:
            return
        total = f" at {self.phase_done}/{self.phase_total}" if self.phase_total else ""
        self.stalled = (
            f"no progress for {idle:.0f} s in phase '{self.current_phase}'{total} "
            f"(AICD_STALL_TIMEOUT_S={limit:g}); resume to retry"
        )
        log.error("%s %s: %s", self.model.__tablename__, self.job_id, self.stalled)
        self.finish(JobStatus.failed, self.stalled)

    def _where(self) -> tuple[Any, ...]:
        return (self.model.id == self.job_id, self.model.attempt == self.attempt)

    def claim(self) -> bool:
        """queued → running for this attempt; False if another attempt owns it, or it was cancelled, or it is
        `lost` (a redelivered message: the job continues only when resumed, under a new attempt)."""
        with session_scope() as s:
            result = s.execute(
                update(self.model)
                .where(*self._where(), self.model.status.in_(CLAIMABLE))
                .values(
                    status=JobStatus.running,
                    worker=worker_name(),
                    heartbeat_at=func.now(),
                    started_at=func.now(),
                    finished_at=None,
                    error=None,
                )
                .execution_options(synchronize_session=False)
            )
            claimed = (result.rowcount or 0) == 1
        if not claimed:
            log.info(
                "%s %s attempt %s: not claimable, skipped",
                self.model.__tablename__,
                self.job_id,
                self.attempt,
            )
        return claimed

    def beat(self) -> None:
        with session_scope() as s:
            row = s.execute(
                update(self.model)
                .where(*self._where(), self.model.status == JobStatus.running)
                .values(heartbeat_at=func.now())  # the database's clock, as the reaper's
                .returning(self.model.cancel_requested)
                .execution_options(synchronize_session=False)
            ).first()
        if row is None:
            self.orphaned.set()
        elif row[0]:
            self.cancelled.set()
        if self.on_beat is not None:
            self.on_beat()

    def _loop(self) -> None:
        interval = min(self.settings.heartbeat_interval_s, self.settings.cancel_poll_s)
        while not self._stop.wait(interval):
            try:
                self.beat()
                self._watch_stall()
            except Exception:  # a DB hiccup must not kill the job; the next beat retries
                log.exception("heartbeat failed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.job_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def should_stop(self) -> bool:
        return (
            self.cancelled.is_set() or self.orphaned.is_set() or SHUTDOWN.is_set() or self.stalled is not None
        )

    def update(self, **values: Any) -> None:
        with session_scope() as s:
            s.execute(
                update(self.model)
                .where(*self._where())
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    def update_other(self, model: type, row_id: int, **values: Any) -> None:
        with session_scope() as s:
            s.execute(
                update(model)
                .where(model.id == row_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    def finish(self, status: str, error: str | None = None, **values: Any) -> None:
        """Final status, only if this attempt still owns the running row."""
        with session_scope() as s:
            s.execute(
                update(self.model)
                .where(*self._where(), self.model.status == JobStatus.running)
                .values(status=status, error=error, finished_at=func.now(), heartbeat_at=func.now(), **values)
                .execution_options(synchronize_session=False)
            )

    def load(self) -> Any:
        with session_scope() as s:
            return s.scalar(select(self.model).where(self.model.id == self.job_id))

    def stopped_status(self) -> str:
        """What a job that stopped early becomes: cancelled if asked to, failed (resumable) if its worker is
        shutting down, else lost (another attempt owns it)."""
        if self.cancelled.is_set():
            return JobStatus.cancelled.value
        return JobStatus.failed.value if SHUTDOWN.is_set() or self.stalled else JobStatus.lost.value

    def stopped_message(self) -> str | None:
        if self.cancelled.is_set():
            return "cancelled by request"
        if SHUTDOWN.is_set():
            return "worker shut down; resume to continue from the last checkpoint"
        return self.stalled
