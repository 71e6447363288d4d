"""What each job does: load its row, call `aicd`, stream status/progress/metrics/generations back.

Testable without Celery: `run_task("aicd.train", run_id, attempt)` is all a task (or `python -m worker.run`)
does. Heavy imports (torch via aicd.train/evaluate) happen inside the handlers.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from aicd.errors import AICDError
from aicd.progress import Cancelled
from aicd.threads import configure_threads
from backend.core.settings import get_settings
from backend.db import session_scope
from backend.models import AnnotationJob, Evaluation, Generation, JobStatus, Run, Sweep
from backend.services import sweeps
from worker import store
from worker.context import NODE, JobContext
from worker.exports import artifacts, db_id, export_dataset
from worker.launched import train_launched
from worker.sweep import child_ended, plan

log = logging.getLogger("worker")


def _run_job(ctx: JobContext, body: Callable[[], None]) -> None:
    """Heart-beat while `body` runs; an exception marks the job failed with a readable message."""
    ctx.start()
    try:
        body()
    except Cancelled:  # a phase saw cancel, shutdown or a stall through ctx.check()
        ctx.finish(ctx.stopped_status(), ctx.stopped_message())
    except AICDError as exc:
        ctx.finish(JobStatus.failed, str(exc))
    except Exception as exc:
        log.exception("job %s %s failed", ctx.model.__tablename__, ctx.job_id)
        tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        ctx.finish(JobStatus.failed, tail[:2000])
    finally:
        ctx.stop()


# ----------------------------------------------------------------------------------------------------- train
def train_run(run_id: int, attempt: int) -> None:
    ctx = JobContext(Run, run_id, attempt)
    if not ctx.claim():
        return
    _run_job(ctx, lambda: _train(ctx))
    child_ended(Run, run_id)  # a sweep's run moves its sweep on


def _train(ctx: JobContext) -> None:
    from aicd.config import TrainConfig
    from aicd.train import train
    from worker.train_callback import JobTrainCallback

    run: Run = ctx.load()
    root = artifacts()
    # the run's own directory, as stored: runs/<name> for a run, sweeps/<sweep>/runs/<name> for a sweep's run
    # (resumed on its own: it continues in the sweep's directory, never in a same-named run's elsewhere)
    run_dir = (root / run.run_dir).resolve()
    if root not in run_dir.parents:
        raise AICDError(f"run {run.id}: its directory {run.run_dir} is outside the artifact directory")
    config = TrainConfig.model_validate(
        {**run.config, "output_dir": str(run_dir.parent), "name": run_dir.name}
    )
    examples = eval_examples = None
    if (dataset_id := db_id(config.dataset)) is not None:
        path, examples = export_dataset(dataset_id, ctx)
        config = config.model_copy(update={"dataset": str(path)})
    if config.eval_every and (eval_id := db_id(config.eval_dataset)) is not None:
        path, eval_examples = export_dataset(eval_id, ctx)
        config = config.model_copy(update={"eval_dataset": str(path)})
    run_id = run.id

    class Callback(JobTrainCallback):
        def on_start(self, total_steps: int, start_step: int) -> None:
            ctx.phase("training", total_steps - start_step)
            with session_scope() as s:
                store.drop_metrics_after(s, run_id, start_step)  # steps after the checkpoint are redone
                s.execute(
                    update(Run)
                    .where(Run.id == run_id)
                    .values(
                        total_steps=total_steps,
                        progress_total=total_steps,
                        step=start_step,
                        progress_done=start_step,
                    )
                )

        def on_log(self, step: int, metrics: dict[str, Any]) -> None:
            with session_scope() as s:
                store.save_metric(s, run_id, step, metrics)
                s.execute(
                    update(Run)
                    .where(Run.id == run_id)
                    .values(
                        step=step,
                        progress_done=step,
                        last_metrics=store.metric_row(run_id, step, metrics)["values"],
                    )
                )

        def on_checkpoint(self, step: int, path: Path) -> None:
            if path.name.startswith("checkpoint-"):
                ctx.update(checkpoint_step=step)

    resume = run_dir.exists()  # an earlier attempt left a checkpoint (or at least the directory)
    if config.distributed.num_processes > 1:  # several GPUs: accelerate launch, followed from here
        step = train_launched(ctx, config, resume=resume)
        if step is not None:
            _succeeded(ctx, root, config, config.run_dir / "final", step, step)
        return
    result = train(
        config,
        examples=examples,
        eval_examples=eval_examples,
        callback=Callback(ctx),
        resume=resume,
        progress=False,
    )
    if result.stopped:
        ctx.finish(ctx.stopped_status(), ctx.stopped_message(), step=result.step)
        return
    final = result.final_dir or config.run_dir / "final"
    _succeeded(ctx, root, config, final, result.step, result.total_steps)


def _succeeded(ctx: JobContext, root: Path, config: Any, final: Path, step: int, total: int) -> None:
    """Register the run's files and mark it succeeded."""
    with session_scope() as s:
        files = [
            config.run_dir / "config.yaml",
            config.run_dir / "metrics.jsonl",
            *sorted(p for p in final.glob("*") if p.is_file()),
        ]
        store.register_artifacts(s, root, files, "run", run_id=ctx.job_id)
    ctx.finish(JobStatus.succeeded, step=step, total_steps=total, progress_done=total, progress_total=total)


# -------------------------------------------------------------------------------------------------- evaluate
def evaluate_job(evaluation_id: int, attempt: int) -> None:
    with session_scope() as s:
        if sweeps.evaluation_waits(s, evaluation_id):  # its sweep run sends it again once it succeeds
            log.info("evaluation %s waits for its run, skipped", evaluation_id)
            return
    ctx = JobContext(Evaluation, evaluation_id, attempt)
    if not ctx.claim():
        return
    _run_job(ctx, lambda: _evaluate(ctx))
    child_ended(Evaluation, evaluation_id)


def _run_model_path(run_id: int) -> str:
    from aicd.checkpoint import latest_checkpoint

    with session_scope() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise AICDError(f"run {run_id} no longer exists")
        run_dir = artifacts() / run.run_dir
    final = run_dir / "final"
    if final.is_dir():
        return str(final)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise AICDError(f"run {run_id} has no final model or checkpoint to evaluate")
    return str(ckpt)


def _stored_chains(evaluation_id: int) -> dict[tuple[str, int, int], str]:
    with session_scope() as s:
        rows = s.execute(
            select(Generation.example_id, Generation.shots, Generation.seed, Generation.generation).where(
                Generation.evaluation_id == evaluation_id
            )
        )
        return {(example_id, shots, seed): chain for example_id, shots, seed, chain in rows}


def _evaluate(ctx: JobContext) -> None:
    from aicd.config import EvalConfig
    from aicd.evaluate import EvalCallback, evaluate

    ev: Evaluation = ctx.load()
    root = artifacts()
    data = dict(ev.config)
    if isinstance(data.get("model"), str) and data["model"].startswith("run:"):
        data["model"] = _run_model_path(int(data["model"][4:]))
    data["output_dir"] = str(root / ev.output_dir)
    examples = shot_examples = None
    if (dataset_id := db_id(data.get("dataset"))) is not None:
        path, examples = export_dataset(dataset_id, ctx)
        data["dataset"] = str(path)
        shot_examples = examples
    if (shots_id := db_id(data.get("shots_dataset"))) is not None:
        path, shot_examples = export_dataset(shots_id, ctx)
        data["shots_dataset"] = str(path)
    config = EvalConfig.model_validate(data)
    evaluation_id = ev.id

    class Callback(EvalCallback):
        def on_progress(self, done: int, total: int) -> None:
            ctx.advance(done - ctx.phase_done)
            ctx.update(progress_done=done, progress_total=total)

        def on_items(self, records: list[Any]) -> None:
            with session_scope() as s:
                store.save_generations(s, evaluation_id, records)

        def should_stop(self) -> bool:  # polled between generation batches: the evaluation is moving
            ctx.advance(0)
            return ctx.should_stop()

    ctx.phase("evaluation")
    result = evaluate(
        config,
        examples=examples,
        shot_examples=shot_examples,
        callback=Callback(),
        progress=False,
        reuse=_stored_chains(evaluation_id),  # a resumed evaluation generates only what is missing
    )
    if result.stopped:
        ctx.finish(ctx.stopped_status(), ctx.stopped_message(), rows=result.rows, summary=result.summary)
        return
    with session_scope() as s:
        out = Path(config.output_dir or "")
        store.register_artifacts(
            s,
            root,
            [out / "results.json", out / "generations.jsonl"],
            "evaluation",
            evaluation_id=evaluation_id,
        )
    ctx.finish(JobStatus.succeeded, rows=result.rows, summary=result.summary)


# -------------------------------------------------------------------------------------------------- annotate
def annotate_job(job_id: int, attempt: int) -> None:
    ctx = JobContext(AnnotationJob, job_id, attempt)
    if not ctx.claim():
        return
    from worker.annotation import annotate

    _run_job(ctx, lambda: annotate(ctx))


# ----------------------------------------------------------------------------------------------------- sweep
def sweep_job(sweep_id: int, attempt: int) -> None:
    """Plans the sweep; its children do the training and evaluation (`worker.sweep`)."""
    ctx = JobContext(Sweep, sweep_id, attempt)
    if not ctx.claim():
        return
    _run_job(ctx, lambda: plan(ctx))


HANDLERS: dict[str, Callable[[int, int], None]] = {
    "aicd.annotate": annotate_job,
    "aicd.train": train_run,
    "aicd.evaluate": evaluate_job,
    "aicd.sweep": sweep_job,
}


def run_task(task: str, job_id: int, attempt: int) -> None:
    if task not in HANDLERS:
        raise ValueError(f"unknown task '{task}' (one of {', '.join(HANDLERS)})")
    configure_threads(get_settings().job_threads(int(NODE.get("concurrency") or 1)))
    HANDLERS[task](job_id, attempt)
