"""Worker-side rules, exercised in this process against the real PostgreSQL (the handlers a Celery task calls):
which rows a message may claim, whose clock heartbeats use, and where a resumed sweep run trains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from backend.core.settings import get_settings
from backend.db import session_scope
from backend.jobs import SWEEP_PRIORITY
from backend.models import AnnotationJob, Dataset, Evaluation, MetricPoint, Run, Sweep
from backend.services import lifecycle
from tests.backend.conftest import arith_jsonl, tiny_train_config


def _dataset(name: str) -> int:
    with session_scope() as s:
        ds = Dataset(name=name, source="test")
        s.add(ds)
        s.flush()
        return ds.id


def _job(model: type, **values: object) -> int:
    with session_scope() as s:
        if model is Run:
            values = {
                "name": f"h-{datetime.now(UTC).timestamp()}",
                "config": {},
                "run_dir": "runs/x",
                **values,
            }
        elif model is Sweep:
            values = {"name": f"h-{datetime.now(UTC).timestamp()}", "config": {}, **values}
        elif model is Evaluation:
            values = {"config": {}, "output_dir": "evaluations/x", **values}
        else:
            values = {"dataset_id": _dataset(f"h-{datetime.now(UTC).timestamp()}"), "config": {}, **values}
        job = model(**values)
        s.add(job)
        s.flush()
        return job.id


def _row(model: type, job_id: int) -> object:
    with session_scope() as s:
        return s.get(model, job_id)


@pytest.mark.usefixtures("client")
@pytest.mark.parametrize("model", [Run, Evaluation, AnnotationJob, Sweep])
def test_a_lost_jobs_redelivered_message_does_nothing(model: type) -> None:
    """Celery redelivers an unacknowledged message after the visibility timeout: if the job was marked lost
    meanwhile, the old attempt must not take it back (only `POST …/resume`, a new attempt, does)."""
    from worker import handlers
    from worker.context import JobContext

    job_id = _job(model, status="lost", attempt=1, error="worker stopped sending heartbeats")
    assert JobContext(model, job_id, 1).claim() is False
    task = next(t for m, t in lifecycle.JOB_TASKS.items() if m is model)
    handlers.run_task(task, job_id, 1)  # the whole task: returns without touching the row
    row = _row(model, job_id)
    assert (row.status, row.attempt, row.worker, row.started_at) == ("lost", 1, None, None)
    # a queued attempt is claimable, once
    with session_scope() as s:
        s.execute(update(model).where(model.id == job_id).values(status="queued", attempt=2))
    assert JobContext(model, job_id, 1).claim() is False  # the old attempt's message still does nothing
    ctx = JobContext(model, job_id, 2)
    assert ctx.claim() is True and JobContext(model, job_id, 2).claim() is False
    ctx.finish("cancelled", "test")


@pytest.mark.usefixtures("client")
def test_heartbeats_and_the_reaper_use_the_database_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker host whose clock is an hour behind, and an API host an hour ahead, must not make a live job
    look dead: both sides use the database's now()."""
    from worker import context
    from worker.context import JobContext

    skewed_worker = lambda: datetime.now(UTC) - timedelta(hours=1)  # noqa: E731
    skewed_api = lambda: datetime.now(UTC) + timedelta(hours=1)  # noqa: E731
    monkeypatch.setattr(context, "utcnow", skewed_worker, raising=False)
    monkeypatch.setattr(lifecycle, "utcnow", skewed_api)
    run_id = _job(Run, status="queued", attempt=1)
    ctx = JobContext(Run, run_id, 1)
    assert ctx.claim()
    ctx.beat()
    with session_scope() as s:
        db_now, beat = s.execute(select(func.now(), Run.heartbeat_at).where(Run.id == run_id)).one()
        assert abs((db_now - beat).total_seconds()) < 5
        lifecycle.reap_stale(s, 30)
    assert _row(Run, run_id).status == "running"
    with session_scope() as s:  # silent for a minute by the database's clock: lost
        s.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=func.now() - timedelta(seconds=60)))
        lifecycle.reap_stale(s, 30)
    row = _row(Run, run_id)
    assert row.status == "lost" and "heartbeats" in row.error
    ctx.beat()
    assert ctx.orphaned.is_set()  # the worker notices it no longer owns the row


def test_resumed_sweep_run_trains_in_the_sweeps_directory(client: TestClient) -> None:
    """`POST /runs/{id}/resume` of a sweep's run continues in <artifacts>/sweeps/<sweep>/runs/<name> (its
    stored run_dir), not in <artifacts>/runs/<name>, where a same-named run of something else may live."""
    from worker import handlers

    root = get_settings().artifacts
    ds = client.post(
        "/api/v1/datasets",
        files={"file": ("sr.jsonl", arith_jsonl("train", 8))},
        data={"name": "sweep-resume"},
    ).json()["id"]
    name = "resume-probe"
    decoy = root / "runs" / name / "checkpoint-1"  # someone else's run of the same name
    decoy.mkdir(parents=True)
    (decoy / "junk").write_text("not a checkpoint")
    with session_scope() as s:
        sweep = Sweep(name="sw-resume", config={}, status="failed")
        s.add(sweep)
        s.flush()
        cfg = {**tiny_train_config(max_steps=2, save_every=1), "name": name, "dataset": f"db:{ds}"}
        run = Run(
            name=f"sw-resume.{name}",
            sweep_id=sweep.id,
            config={**cfg, "output_dir": str(root / "sweeps" / "sw-resume" / "runs")},
            run_dir=f"sweeps/sw-resume/runs/{name}",
            status="failed",
            error="worker shut down; resume to continue",
        )
        s.add(run)
        s.flush()
        run_id = run.id
    resp = client.post(f"/api/v1/runs/{run_id}/resume")
    assert resp.status_code == 202 and resp.json()["attempt"] == 2, resp.text
    handlers.train_run(run_id, 2)  # what the worker does with that message
    done = client.get(f"/api/v1/runs/{run_id}").json()
    assert done["status"] == "succeeded", done
    assert done["step"] == 2 and done["checkpoint_step"] == 2
    assert (root / "sweeps" / "sw-resume" / "runs" / name / "final").is_dir()
    assert sorted(p.name for p in (root / "runs" / name).iterdir()) == ["checkpoint-1"]  # untouched
    assert [p.name for p in decoy.iterdir()] == ["junk"]
    with session_scope() as s:
        steps = s.scalars(
            select(MetricPoint.step).where(MetricPoint.run_id == run_id).order_by(MetricPoint.step)
        )
        assert list(steps) == [1, 2]
    arts = client.get("/api/v1/artifacts", params={"run_id": run_id, "limit": 100}).json()["items"]
    assert arts and all(Path(a["path"]).parts[:4] == ("sweeps", "sw-resume", "runs", name) for a in arts)


@pytest.mark.usefixtures("client")
def test_a_sweeps_children_are_resubmitted_but_its_waiting_evaluations_are_not() -> None:
    """Embedded mode submits queued jobs from the database: a sweep's runs are jobs of their own, while the
    evaluation of a sweep run that has not succeeded waits for it (the run's worker sends it)."""
    sweep_id = _job(Sweep)
    own = _job(Run)
    planned = _job(Run, sweep_id=sweep_id)
    done = _job(Run, sweep_id=sweep_id, status="succeeded")
    waiting = _job(Evaluation, run_id=planned, output_dir="sweeps/h/evals/p/d")
    ready = _job(Evaluation, run_id=done, output_dir="sweeps/h/evals/d/d")
    manual = _job(Evaluation, run_id=planned)  # a user's own evaluation of the run's checkpoint
    with session_scope() as s:
        queued = lifecycle.queued_jobs(s)
    ids = {job_id for task, job_id, _, _ in queued if task.endswith("train")}
    assert {own, planned} <= ids, queued
    ids = {job_id for task, job_id, _, _ in queued if task.endswith("evaluate")}
    assert {ready, manual} <= ids and waiting not in ids, queued
    # a sweep's children queue behind the user's own jobs in embedded mode too (as on Redis)
    prio = {job_id: p for _, job_id, _, p in queued}
    assert prio[planned] == prio[ready] == SWEEP_PRIORITY and prio[own] is None and prio[manual] is None
