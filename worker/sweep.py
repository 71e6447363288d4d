"""Sweep job: `aicd.sweep.run_sweep` over the grid, mirrored into the database as it goes.

Each planned run becomes a `runs` row (sweep_id set) with its status and metric points; each finished
evaluation becomes an `evaluations` row with its generations, so sweep runs appear in the run list, the
metric charts and the side-by-side view like any other run. The results table is stored on the sweep.
Stored datasets are referred to as `db:<id>` in the config and exported to JSONL before the sweep starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from backend.core.settings import get_settings
from backend.db import session_scope
from backend.models import Evaluation, JobStatus, Run, Sweep
from backend.models.base import utcnow
from worker import store
from worker.context import JobContext
from worker.handlers import _db_id, _export_dataset


def _resolve_datasets(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """Replace `db:<id>` dataset references (training, grid, evaluation and demonstration data) by exported
    JSONL paths; also return path -> dataset id, so the mirrored runs and evaluations keep their dataset."""
    ids: dict[str, int] = {}

    def path(ref: Any) -> Any:
        if (dataset_id := _db_id(ref)) is None:
            return ref
        exported = str(_export_dataset(dataset_id)[0])
        ids[exported] = dataset_id
        return exported

    config = dict(config)
    train = dict(config.get("train") or {})
    for key in ("dataset", "eval_dataset"):
        if train.get(key):
            train[key] = path(train[key])
    config["train"] = train
    grid = dict(config.get("grid") or {})
    if "dataset" in grid:
        grid["dataset"] = [path(v) for v in grid["dataset"]]
    config["grid"] = grid
    if config.get("eval_datasets"):
        config["eval_datasets"] = [path(v) for v in config["eval_datasets"]]
    evaluation = dict(config.get("eval") or {})
    if evaluation.get("shots_dataset"):
        evaluation["shots_dataset"] = path(evaluation["shots_dataset"])
    config["eval"] = evaluation
    return config, ids


def _relative(root: Path, path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)


def sweep(ctx: JobContext) -> None:
    from aicd.config import SweepConfig
    from aicd.evaluate import EvalResult
    from aicd.sweep import SweepCallback, run_sweep

    row: Sweep = ctx.load()
    sweep_id, sweep_name = row.id, row.name
    root = get_settings().artifacts
    resolved, dataset_ids = _resolve_datasets({**row.config, "output_dir": str(root / "sweeps")})
    config = SweepConfig.model_validate(resolved)
    run_ids: dict[str, int] = {}
    current: dict[str, int | None] = {"run": None}

    def beat_child() -> None:  # the sweep's heartbeat keeps its current run alive for the reaper
        if current["run"] is not None:
            ctx.update_other(Run, current["run"], heartbeat_at=func.now())  # the DB's clock, as the reaper

    ctx.on_beat = beat_child

    class Callback(SweepCallback):
        def on_plan(self, runs: list[Any]) -> None:
            with session_scope() as s:
                for planned in runs:
                    name = f"{sweep_name}.{planned.name}"
                    existing = s.scalar(select(Run).where(Run.name == name))
                    if existing is None:
                        existing = Run(
                            name=name,
                            sweep_id=sweep_id,
                            config=planned.train.model_dump(mode="json"),
                            run_dir=_relative(root, planned.run_dir),
                            dataset_id=dataset_ids.get(str(planned.train.dataset)),
                        )
                        s.add(existing)
                        s.flush()
                    run_ids[planned.name] = existing.id
            ctx.update(progress_total=len(runs), progress_done=0)

        def on_run_start(self, index: int, run: Any) -> None:
            current["run"] = run_ids[run.name]
            with session_scope() as s:
                s.execute(
                    update(Run)
                    .where(Run.id == current["run"])
                    .values(
                        status=JobStatus.running,
                        started_at=utcnow(),
                        heartbeat_at=func.now(),
                        finished_at=None,
                        error=None,
                        worker=ctx_worker(),
                    )
                )

        def on_train_log(self, run: Any, step: int, total_steps: int, metrics: dict[str, Any]) -> None:
            rid = run_ids[run.name]
            with session_scope() as s:
                store.save_metric(s, rid, step, metrics)
                s.execute(
                    update(Run)
                    .where(Run.id == rid)
                    .values(
                        step=step,
                        total_steps=total_steps,
                        progress_done=step,
                        progress_total=total_steps,
                        last_metrics=store.metric_row(rid, step, metrics)["values"],
                        heartbeat_at=func.now(),
                    )
                )

        def on_run_end(self, index: int, run: Any, status: str) -> None:
            rid = run_ids[run.name]
            final = JobStatus.cancelled if status == "stopped" else JobStatus.succeeded
            if final == JobStatus.succeeded:
                _import_evaluations(root, rid, run, EvalResult, dataset_ids)
            with session_scope() as s:
                s.execute(update(Run).where(Run.id == rid).values(status=final, finished_at=utcnow()))
            current["run"] = None
            ctx.update(progress_done=index + 1)

        def should_stop(self) -> bool:
            return ctx.should_stop()

    try:
        result = run_sweep(config, callback=Callback(), resume=True, progress=False)
    except BaseException:
        _close_unstarted(
            sweep_id, JobStatus.failed, "the sweep failed before this run started; resume the sweep"
        )
        raise
    if result.stopped:
        _close_unstarted(
            sweep_id, ctx.stopped_status(), "the sweep stopped before this run started; resume the sweep"
        )
    rows = [dict(r) for r in result.table_rows]
    files = [p for p in (result.csv_path, result.md_path, *(result.plots or [])) if p]
    outputs = {
        "csv": _relative(root, result.csv_path),
        "md": _relative(root, result.md_path),
        "plots": [_relative(root, p) for p in result.plots or []],
    }
    with session_scope() as s:
        store.register_artifacts(s, root, [Path(p) for p in files], "sweep", sweep_id=sweep_id)
    if result.stopped:
        ctx.finish(ctx.stopped_status(), ctx.stopped_message(), table_rows=rows, outputs=outputs)
    else:
        ctx.finish(JobStatus.succeeded, table_rows=rows, outputs=outputs)


def _close_unstarted(sweep_id: int, status: str, message: str) -> None:
    """The sweep's runs still queued when it ends early get its end status, so none looks queued forever."""
    with session_scope() as s:
        s.execute(
            update(Run)
            .where(Run.sweep_id == sweep_id, Run.status == JobStatus.queued)
            .values(status=status, error=message, finished_at=utcnow())
        )


def ctx_worker() -> str:
    from worker.context import worker_name

    return worker_name()


def _import_evaluations(
    root: Path, run_id: int, run: Any, result_cls: Any, dataset_ids: dict[str, int]
) -> None:
    """Each finished evaluation of a sweep run → an evaluations row and its generations (idempotent)."""
    for ev in run.evals:
        out = Path(ev.output_dir)
        if not (out / "results.json").is_file():
            continue
        result = result_cls.load(out)
        rel = _relative(root, out)
        with session_scope() as s:
            row = s.scalar(
                select(Evaluation).where(Evaluation.run_id == run_id, Evaluation.output_dir == rel)
            )
            if row is None:
                row = Evaluation(
                    run_id=run_id,
                    config=ev.model_dump(mode="json"),
                    output_dir=rel,
                    dataset_id=dataset_ids.get(str(ev.dataset)),
                    status=JobStatus.succeeded,
                    started_at=utcnow(),
                    finished_at=utcnow(),
                )
                s.add(row)
                s.flush()
            row.rows, row.summary = result.rows, result.summary
            row.progress_done = row.progress_total = len(result.items)
            store.save_generations(s, row.id, result.items)
            store.register_artifacts(
                s, root, [out / "results.json", out / "generations.jsonl"], "evaluation", evaluation_id=row.id
            )
