"""Thin Celery tasks: each takes (job id, attempt) and hands over to `worker.handlers`."""

from __future__ import annotations

from worker import handlers
from worker.celery_app import app


@app.task(name="aicd.annotate", acks_late=True)
def annotate_task(job_id: int, attempt: int) -> None:
    handlers.run_task("aicd.annotate", job_id, attempt)


@app.task(name="aicd.train", acks_late=True)
def train_task(run_id: int, attempt: int) -> None:
    handlers.run_task("aicd.train", run_id, attempt)


@app.task(name="aicd.evaluate", acks_late=True)
def evaluate_task(evaluation_id: int, attempt: int) -> None:
    handlers.run_task("aicd.evaluate", evaluation_id, attempt)


@app.task(name="aicd.sweep", acks_late=True)
def sweep_task(sweep_id: int, attempt: int) -> None:
    handlers.run_task("aicd.sweep", sweep_id, attempt)
