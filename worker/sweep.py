"""Sweeps as coordinators: the `aicd.sweep` job only plans; every run and evaluation is a job of its own.

Planning expands the grid (`aicd.sweep.plan_sweep`) into one `runs` row per planned run and one
`evaluations` row per (run, evaluation dataset), all in one transaction, and sends each run to the gpu
queue. When a child ends, `child_ended` moves the sweep on: a run that succeeded sends its evaluations, an
evaluation that finished rebuilds the results table (`aicd.sweep`'s table builder), and the sweep's status is
re-summarised from its children (`backend.services.sweeps`). N gpu workers therefore train up to N runs of a
sweep at once, and cancel, resume and the reaper treat a sweep's children exactly like any other job.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from backend.db import session_scope
from backend.jobs import SWEEP_PRIORITY, BrokerUnavailable, gpus_of, submit_from_worker
from backend.models import Evaluation, JobStatus, Run, Sweep
from backend.models.base import utcnow
from backend.services import sweeps
from worker import store
from worker.context import JobContext
from worker.exports import artifacts, relative, resolve_sweep_datasets

log = logging.getLogger("worker")
TASKS = {Run: "aicd.train", Evaluation: "aicd.evaluate"}
ENDED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


def _config(row: Sweep, *, export: bool) -> tuple[Any, dict[str, int]]:
    """The sweep's SweepConfig with stored datasets as exported files, rooted in <artifacts>/sweeps."""
    from aicd.config import SweepConfig

    resolved, dataset_ids = resolve_sweep_datasets(
        {**row.config, "output_dir": str(artifacts() / "sweeps")}, export=export
    )
    return SweepConfig.model_validate(resolved), dataset_ids


def plan(ctx: JobContext) -> None:
    """The `aicd.sweep` job: create the sweep's children and send its runs to the gpu workers."""
    from aicd.config import save_config
    from aicd.sweep import ensure_pretrained_bases, plan_sweep, pretrained_specs, sweep_dir

    config, dataset_ids = _config(ctx.load(), export=True)
    planned = plan_sweep(config)
    sweep_dir(config).mkdir(parents=True, exist_ok=True)
    save_config(config, sweep_dir(config) / "sweep.yaml")
    if pretrained_specs(config):  # runs start from a cached pre-trained base: build it once, before them
        ensure_pretrained_bases(config, sweep_dir(config), progress=False, callback=_follow_build(ctx))
    with session_scope() as s:
        sweep = sweeps.lock(s, ctx.job_id)
        if sweep is None or sweep.attempt != ctx.attempt:
            return
        if sweep.cancel_requested:  # cancelled while planning: nothing is created
            sweep.status, sweep.error, sweep.finished_at = (
                JobStatus.cancelled,
                "cancelled by request",
                utcnow(),
            )
            return
        runs = [_child_run(s, sweep, p, dataset_ids) for p in planned]
        s.flush()
        for run, p in zip(runs, planned, strict=True):
            _child_evaluations(s, run, p.evals, dataset_ids)
        s.flush()
        sweeps.summarise(sweep, sweeps.children(s, sweep.id))
        ready = [(r.id, r.attempt, gpus_of(r.config)) for r in runs if r.status == JobStatus.queued]
    for run_id, attempt, gpus in ready:
        send(Run, run_id, attempt, gpus)


def _follow_build(ctx: JobContext) -> Any:
    """A TrainCallback that shows the base's pre-training as the sweep's phase and lets cancel stop it."""
    from worker.train_callback import JobTrainCallback

    class FollowBuild(JobTrainCallback):
        def phase(self, name: str, total: int | None = None) -> None:
            super().phase(f"pre-training base: {name}", total)

        def on_start(self, total_steps: int, start_step: int) -> None:
            self.last = start_step
            super().phase("pre-training base", total_steps - start_step)

        def on_log(self, step: int, metrics: dict[str, Any]) -> None:
            self.advance(step - self.last)
            self.last = step

    return FollowBuild(ctx)


def _child_run(s: Any, sweep: Sweep, planned: Any, dataset_ids: dict[str, int]) -> Run:
    name = f"{sweep.name}.{planned.name}"
    run = s.query(Run).filter(Run.name == name, Run.sweep_id == sweep.id).one_or_none()
    if run is None:
        run = Run(
            name=name,
            sweep_id=sweep.id,
            config=planned.train.model_dump(mode="json"),
            run_dir=relative(artifacts(), planned.run_dir),
            dataset_id=dataset_ids.get(str(planned.train.dataset)),
            total_steps=planned.train.max_steps or 0,
        )
        s.add(run)
    return run


def _child_evaluations(s: Any, run: Run, evals: list[Any], dataset_ids: dict[str, int]) -> None:
    """One evaluation job per evaluation dataset, of the run's final model (`run:<id>`); queued, but sent
    only when the run succeeds."""
    for ev in evals:
        out = relative(artifacts(), ev.output_dir)
        if s.query(Evaluation.id).filter(Evaluation.run_id == run.id, Evaluation.output_dir == out).first():
            continue
        s.add(
            Evaluation(
                run_id=run.id,
                config={**ev.model_dump(mode="json"), "model": f"run:{run.id}"},
                output_dir=out,
                dataset_id=dataset_ids.get(str(ev.dataset)),
            )
        )


def _ensure_evaluations(s: Any, run: Run) -> None:
    """The planned evaluations of a sweep run, created if missing (a sweep planned before they were rows)."""
    from aicd.sweep import plan_sweep

    sweep = s.get(Sweep, run.sweep_id)
    config, dataset_ids = _config(sweep, export=False)
    for planned in plan_sweep(config):
        if f"{sweep.name}.{planned.name}" == run.name:
            _child_evaluations(s, run, planned.evals, dataset_ids)
    s.flush()


def send(model: type, job_id: int, attempt: int, gpus: int = 1) -> None:
    """Queue a child on the broker behind single jobs (on `gpu<n>` for a run asking for n GPUs); if the
    broker is down it is marked failed (resumable with the sweep) rather than left queued with nobody told."""
    try:
        submit_from_worker(TASKS[model], job_id, attempt, priority=SWEEP_PRIORITY, gpus=gpus)
    except BrokerUnavailable as exc:
        log.error("could not queue %s %s: %s", model.__tablename__, job_id, exc)
        with session_scope() as s:
            s.query(model).filter(model.id == job_id, model.attempt == attempt).update(
                {
                    "status": JobStatus.failed,
                    "error": f"could not be queued ({exc}); resume the sweep",
                    "finished_at": utcnow(),
                }
            )


def child_ended(model: type, job_id: int) -> None:
    """After a child of a sweep ends: send a succeeded run's evaluations, rebuild the table after an
    evaluation, and re-summarise the sweep. Never raises (the child's own outcome is already recorded)."""
    try:
        with session_scope() as s:
            sweep_id = sweeps.sweep_of(s, model, job_id)
            if sweep_id is None:
                return
            row = s.get(model, job_id)
            ready = []
            if model is Run and row is not None and row.status == JobStatus.succeeded:
                _ensure_evaluations(s, row)
                ready = [(e.id, e.attempt) for e in sweeps.queued_evaluations(s, job_id)]
        for ev_id, attempt in ready:
            send(Evaluation, ev_id, attempt)
        with session_scope() as s:  # status and table change together: `succeeded` comes with its table
            sweep = sweeps.lock(s, sweep_id)
            status = sweeps.settle(s, sweep) if sweep is not None else None
            if sweep is not None and (model is Evaluation or status in ENDED):
                write_table(s, sweep, final=status == JobStatus.succeeded)
    except Exception:
        log.exception("sweep bookkeeping after %s %s failed", model.__tablename__, job_id)


def write_table(s: Any, sweep: Sweep, *, final: bool) -> None:
    """The locked sweep's results table from every finished evaluation (with the figures once all are
    done), written to its directory and stored on the row."""
    from aicd.sweep import build_table, plan_sweep, sweep_dir, write_report
    from aicd.sweep import write_table as write_files

    root = artifacts()
    config, _ = _config(sweep, export=False)
    runs = plan_sweep(config)
    if final:
        result = write_report(config, runs)
        rows, files = result.table_rows, [result.csv_path, result.md_path, *result.plots]
    else:
        rows = build_table(runs)
        files = list(write_files(rows, sweep_dir(config), title=f"Sweep {config.name}"))
    sweep.table_rows = [dict(r) for r in rows]
    sweep.outputs = {
        "csv": relative(root, files[0]),
        "md": relative(root, files[1]),
        "plots": [relative(root, p) for p in files[2:]],
    }
    store.register_artifacts(s, root, [Path(p) for p in files], "sweep", sweep_id=sweep.id)
