"""Celery app `worker.celery_app:app` on Redis: queues `gpu` (train, evaluate, sweep planning), `gpu<n>` (runs
asking for n GPUs) and `cpu` (annotate).

Run a GPU worker with `celery -A worker.celery_app:app worker -Q gpu --pool=solo --concurrency=1`, one on an
n-GPU host for multi-GPU runs with `-Q gpu<n>` (it may also take `-Q gpu<n>,gpu`), and a CPU worker with
`-Q cpu`; the settings (acks_late, prefetch 1, routes) are shared with the API via
`backend.jobs.celery_config`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, worker_shutting_down

from backend.core.settings import get_settings
from backend.jobs import celery_config
from worker.context import NODE, SHUTDOWN

app = Celery("aicd", include=["worker.tasks"])
app.conf.update(celery_config(get_settings()))


@worker_shutting_down.connect
def _stop_running_job(**_: Any) -> None:
    """Warm shutdown (SIGTERM, `docker stop`): the running job checkpoints within seconds and ends `failed`
    (resumable) instead of being killed mid-step when the grace period runs out."""
    SHUTDOWN.set()


@celeryd_after_setup.connect
def _remember_node_name(sender: str, instance: Any = None, **_: Any) -> None:
    """Jobs record which worker ran them as `<node>:<pid>`, e.g. `gpu@host:42` (the `-n` of the command);
    the worker's concurrency sets their default thread count."""
    NODE["name"] = str(sender)
    NODE["concurrency"] = str(getattr(instance, "concurrency", None) or 1)
