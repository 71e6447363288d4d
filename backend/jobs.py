"""How the API hands work to workers, by task name only (the API never imports torch or `worker`).

With a broker configured (AICD_REDIS_URL / AICD_BROKER_URL) jobs go to Celery with `send_task`. Without one
(embedded mode) an in-process dispatcher runs each job as a child process `python -m worker.run <task> <id>
<attempt>`, up to AICD_EMBEDDED_WORKERS at a time per queue (default: one per GPU, one on a CPU-only host),
so `uvicorn backend.main:app` alone is a working laptop install. Either way the job row in the database is
the source of truth; messages carry only (id, attempt). Jobs that workers queue (a sweep's children) reach
embedded mode through the database: the dispatcher looks for queued jobs each time one of its children ends.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from backend.core.settings import Settings, get_settings

log = logging.getLogger("backend.jobs")

TASK_QUEUES: dict[str, str] = {
    "aicd.annotate": "cpu",
    "aicd.train": "gpu",
    "aicd.evaluate": "gpu",
    "aicd.sweep": "gpu",
}


def queue_for(task: str, gpus: int = 1) -> str:
    """The queue of a job: `gpu` for one GPU, `gpu<n>` for a run asking for n GPUs (served by workers on a
    host with n GPUs: `-Q gpu<n>`), `cpu` for annotation."""
    queue = TASK_QUEUES[task]
    return f"{queue}{gpus}" if queue == "gpu" and gpus > 1 else queue


SWEEP_PRIORITY = 6
"""Priority of a sweep's children. With Redis, 0 (the default of every other message) is served first, so
single runs and evaluations never wait behind a sweep's backlog (kombu's priority steps 0, 3, 6, 9)."""


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings shared by the API (producer) and the workers (consumers)."""
    transport: dict[str, Any] = {"visibility_timeout": 6 * 3600}
    if settings.redis_prefix:
        transport["global_keyprefix"] = settings.redis_prefix
    return {
        "broker_url": settings.celery_broker,
        "task_acks_late": True,  # a message is acknowledged only when its job ends
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,  # one job at a time per worker process
        "task_default_queue": "gpu",
        "task_routes": {name: {"queue": q} for name, q in TASK_QUEUES.items()},
        "task_ignore_result": True,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


class BrokerUnavailable(Exception):
    """The job message could not be handed to the broker (Redis down or unreachable)."""


class Dispatcher(Protocol):
    mode: str

    def submit(
        self, task: str, job_id: int, attempt: int, priority: int | None = None, gpus: int = 1
    ) -> None:
        """Hand the job to a worker; BrokerUnavailable when that is impossible right now."""

    def close(self) -> None: ...


class CeleryDispatcher:
    mode = "celery"

    def __init__(self, settings: Settings):
        from celery import Celery

        self.app = Celery("aicd-api", set_as_current=False)
        self.app.conf.update(celery_config(settings))

    def submit(
        self, task: str, job_id: int, attempt: int, priority: int | None = None, gpus: int = 1
    ) -> None:
        from kombu.exceptions import OperationalError

        try:
            queue = queue_for(task, gpus)
            self.app.send_task(task, args=[job_id, attempt], queue=queue, priority=priority)
        except (OperationalError, OSError) as exc:  # kombu wraps redis/socket errors in OperationalError
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def ping(self, timeout: float) -> bool:
        """Whether the broker answers a fresh connection within `timeout` seconds."""
        try:
            with self.app.connection_for_write(connect_timeout=timeout) as conn:
                conn.ensure_connection(max_retries=0, timeout=timeout)
            return True
        except Exception:
            return False

    def close(self) -> None:
        self.app.close()


def embedded_slots(settings: Settings) -> int:
    """Jobs run at once per queue in embedded mode: AICD_EMBEDDED_WORKERS, else one per visible GPU (from
    CUDA_VISIBLE_DEVICES or the NVIDIA driver's device list, without importing torch), else one."""
    if "embedded_workers" in settings.model_fields_set:
        return settings.embedded_workers
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return max(1, len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]))
    gpus = Path("/proc/driver/nvidia/gpus")
    return max(1, len(list(gpus.iterdir()))) if gpus.is_dir() else 1


Job = tuple[str, int, int]
Queued = tuple[int, int, Job | None]
"""(priority, submission number, job) as the embedded queues hold it; None tells a slot thread to stop."""


class EmbeddedDispatcher:
    """`embedded_slots` background threads per queue run queued jobs as child processes, by priority as Redis
    serves them (lower first, so a sweep's children, at SWEEP_PRIORITY, wait behind single jobs), then in
    submission order. `pending` (set by the app) lists the queued jobs in the database with their priority;
    it is read each time a child ends, so jobs a worker queued (a sweep's runs, a sweep run's evaluations) are
    picked up without a broker."""

    mode = "embedded"

    def __init__(
        self, settings: Settings, pending: Callable[[], list[tuple[str, int, int, int | None]]] | None = None
    ):
        self.settings = settings
        self.pending = pending
        self.slots = embedded_slots(settings)
        self._queues: dict[str, queue.PriorityQueue[Queued]] = {}
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._known: set[Job] = set()  # submitted and not yet ended
        self._lock = threading.Lock()
        for name in sorted(set(TASK_QUEUES.values())):
            q: queue.PriorityQueue[Queued] = queue.PriorityQueue()
            self._queues[name] = q
            for i in range(self.slots):
                t = threading.Thread(target=self._loop, args=(q,), name=f"aicd-{name}-{i}", daemon=True)
                t.start()
                self._threads.append(t)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AICD_DATABASE_URL"] = self.settings.db_url
        env["AICD_ARTIFACT_DIR"] = str(self.settings.artifacts)
        env.pop("AICD_REDIS_URL", None)
        env.pop("AICD_BROKER_URL", None)
        env["AICD_THREADS"] = str(self.settings.job_threads(self.slots * len(self._queues)))
        return env

    def _loop(self, q: queue.PriorityQueue[Queued]) -> None:
        while True:
            item = q.get()[2]
            if item is None:
                return
            try:
                self._run(item)
            except Exception:  # keep the loop alive whatever happens to one job
                log.exception("embedded job %s %s failed to start", item[0], item[1])
            with self._lock:
                self._known.discard(item)
            self.submit_pending()

    def _run(self, job: Job) -> None:
        """One job in a child process, as a Celery worker would run it (`python -m worker.run`)."""
        task, job_id, attempt = job
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.run", task, str(job_id), str(attempt)], env=self._env()
        )
        with self._lock:
            self._procs.add(proc)
        rc = proc.wait()
        with self._lock:
            self._procs.discard(proc)
        if rc:
            log.warning("%s %s (attempt %s) exited with %s", task, job_id, attempt, rc)

    def submit_pending(self) -> None:
        """Submit the database's queued jobs that are not submitted yet."""
        if self.pending is None:
            return
        try:
            jobs = self.pending()
        except Exception:
            log.exception("could not list queued jobs")
            return
        for task, job_id, attempt, priority in jobs:
            self.submit(task, job_id, attempt, priority=priority)

    def submit(
        self, task: str, job_id: int, attempt: int, priority: int | None = None, gpus: int = 1
    ) -> None:
        """One machine: every gpu job shares the `gpu` slots (a multi-GPU run launches its own processes)."""
        with self._lock:
            if (task, job_id, attempt) in self._known:
                return
            self._known.add((task, job_id, attempt))
        self._queues[TASK_QUEUES[task]].put((priority or 0, next(self._order), (task, job_id, attempt)))

    def close(self) -> None:
        for q in self._queues.values():
            for _ in range(self.slots):
                q.put((-1, next(self._order), None))  # ahead of every job: no new job starts
        with self._lock:
            procs = list(self._procs)
        for proc in procs:  # jobs notice the stop like a lost worker and can be resumed
            proc.terminate()


_dispatcher: Dispatcher | None = None
_dispatcher_lock = threading.Lock()


def get_dispatcher() -> Dispatcher:
    global _dispatcher
    with _dispatcher_lock:
        if _dispatcher is None:
            settings = get_settings()
            _dispatcher = EmbeddedDispatcher(settings) if settings.embedded else CeleryDispatcher(settings)
        return _dispatcher


def submit_from_worker(
    task: str, job_id: int, attempt: int, priority: int | None = None, gpus: int = 1
) -> None:
    """A worker queues a follow-up job (a sweep's run or evaluation): a message on the broker; in embedded
    mode nothing, as the API's dispatcher finds the queued row when this worker process ends."""
    settings = get_settings()
    if not settings.embedded:
        get_dispatcher().submit(task, job_id, attempt, priority=priority, gpus=gpus)


def gpus_of(config: dict[str, Any] | None) -> int:
    """GPUs a run's stored TrainConfig asks for: `distributed.num_processes` (default 1)."""
    distributed = (config or {}).get("distributed") or {}
    n = distributed.get("num_processes", 1) if isinstance(distributed, dict) else 1
    return n if isinstance(n, int) and n > 1 else 1


def close_dispatcher() -> None:
    global _dispatcher
    with _dispatcher_lock:
        if _dispatcher is not None:
            _dispatcher.close()
            _dispatcher = None
