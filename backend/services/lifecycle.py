"""Job lifecycle shared by annotation jobs, runs, evaluations and sweeps: enqueue, cancel, resume, reap."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session

from backend.api.errors import ApiError
from backend.jobs import SWEEP_PRIORITY, BrokerUnavailable, get_dispatcher, gpus_of
from backend.models import RESUMABLE, AnnotationJob, Evaluation, JobStatus, Run, Sweep
from backend.models.base import utcnow
from backend.services import sweeps

log = logging.getLogger("backend")
BROKER_DOWN = (
    "the job broker (Redis) is unreachable, so the job was never queued; resume it once the broker is back"
)

JOB_TASKS: dict[type, str] = {
    AnnotationJob: "aicd.annotate",
    Run: "aicd.train",
    Evaluation: "aicd.evaluate",
    Sweep: "aicd.sweep",
}


def enqueue(session: Session, job: AnnotationJob | Run | Evaluation | Sweep) -> None:
    """Commit the queued row first, then send the message, so a worker always finds what it is told about.

    If the broker cannot take the message the row would stay `queued` with nobody told about it: it is marked
    `failed` (resumable) saying why, and the request gets a 503.
    """
    session.commit()
    try:
        get_dispatcher().submit(
            JOB_TASKS[type(job)],
            job.id,
            job.attempt,
            priority=priority(session, job),
            gpus=gpus_of(job.config) if isinstance(job, Run) else 1,
        )
    except BrokerUnavailable as exc:
        kind = type(job).__name__.lower()
        log.error("could not queue %s %s: %s", kind, job.id, exc)
        model = type(job)
        session.execute(
            update(model)
            .where(model.id == job.id, model.attempt == job.attempt, model.status == JobStatus.queued)
            .values(status=JobStatus.failed, error=BROKER_DOWN, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.commit()
        raise ApiError(
            503,
            f"{kind} {job.id} was saved but could not be queued: the job broker is unreachable. "
            f"It is marked failed; resume it (POST …/{job.id}/resume) once the broker is back.",
            field="broker",
        ) from None


def priority(session: Session, job: AnnotationJob | Run | Evaluation | Sweep) -> int | None:
    """A sweep's children queue behind single runs and evaluations, so a big sweep never starves them."""
    return _priority(session, type(job), job.id)


def _priority(session: Session, model: type, job_id: int) -> int | None:
    if model in (Run, Evaluation) and sweeps.sweep_of(session, model, job_id) is not None:
        return SWEEP_PRIORITY
    return None


def request_cancel(session: Session, job: AnnotationJob | Run | Evaluation | Sweep) -> None:
    """Queued jobs are cancelled at once; running ones get a flag their worker polls (within ~1 s).

    A planned sweep cancels its children (`sweeps.cancel`); a child of a sweep is cancelled like any job
    and its sweep's summary follows."""
    kind = type(job).__name__.lower()
    if isinstance(job, Sweep) and job.status in (JobStatus.queued, JobStatus.running):
        if sweeps.lock(session, job.id) is not None and sweeps.children(session, job.id):
            sweeps.cancel(session, job)
            return
    if job.status == JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
    elif job.status == JobStatus.running:
        job.cancel_requested = True
    else:
        raise ApiError(
            409,
            f"{kind} {job.id} is {job.status}; only queued or running jobs can be cancelled",
            field="status",
        )
    session.commit()
    if isinstance(job, Run | Evaluation) and (sweep_id := sweeps.sweep_of(session, type(job), job.id)):
        sweeps.refresh(session, sweep_id)


def prepare_resume(session: Session, job: AnnotationJob | Run | Evaluation | Sweep) -> None:
    """Requeue a failed, cancelled or lost job under a new attempt number (stale messages are then ignored)."""
    kind = type(job).__name__.lower()
    if job.status not in RESUMABLE:
        raise ApiError(
            409,
            f"{kind} {job.id} is {job.status}; only failed, cancelled or lost jobs can be resumed",
            field="status",
        )
    sweeps.requeue(job)


def resume(session: Session, job: AnnotationJob | Run | Evaluation | Sweep) -> None:
    """`POST …/resume` of any job: a planned sweep requeues exactly its children that did not succeed;
    anything else (a child of a sweep too) is requeued under a new attempt and sent to a worker."""
    if isinstance(job, Sweep) and job.status in RESUMABLE:
        sweeps.lock(session, job.id)
        if sweeps.children(session, job.id):
            for child in sweeps.resume(session, job):
                enqueue(session, child)
            return
    if isinstance(job, Evaluation) and sweeps.evaluation_waits(session, job.id):
        raise ApiError(
            409,
            f"evaluation {job.id} evaluates a sweep run that has not succeeded; resume that run first",
            field="status",
        )
    prepare_resume(session, job)
    enqueue(session, job)
    if isinstance(job, Run | Evaluation) and (sweep_id := sweeps.sweep_of(session, type(job), job.id)):
        sweeps.refresh(session, sweep_id)


def reap_stale(session: Session, timeout_s: float) -> int:
    """Mark running jobs whose worker stopped sending heartbeats as `lost`; returns how many.

    "Now" is the database's clock, the one workers stamp heartbeats with (`worker.context`), so a worker or
    API host whose clock is off never makes live jobs look dead (or dead ones alive).
    """
    now = session.scalar(select(func.now()))
    cutoff = now - timedelta(seconds=timeout_s)
    total = 0
    touched: set[int] = set()
    for model in JOB_TASKS:
        stale = or_(model.heartbeat_at < cutoff, model.heartbeat_at.is_(None) & (model.started_at < cutoff))
        if model is Sweep:  # a planned sweep has no worker of its own: its children are reaped instead
            stale = stale & ~exists().where(Run.sweep_id == Sweep.id)
        result = session.execute(
            update(model)
            .where(model.status == JobStatus.running, stale)
            .values(
                status=JobStatus.lost,
                finished_at=now,
                error=f"worker stopped sending heartbeats for {timeout_s:g}s; resume to continue",
            )
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
        ids = list(result.scalars())
        total += len(ids)
        if model in (Run, Evaluation):
            touched |= {s for i in ids if (s := sweeps.sweep_of(session, model, i)) is not None}
    session.commit()
    for sweep_id in sorted(touched):  # a lost child makes its sweep failed once the others end
        sweeps.refresh(session, sweep_id)
    return total


def queued_jobs(session: Session) -> list[tuple[str, int, int, int | None]]:
    """(task, id, attempt, priority) of every queued job, oldest first: embedded mode submits them at start-up
    and whenever a job ends (a worker queues a sweep's children and its runs' evaluations in the database)."""
    out: list[tuple[str, int, int, int | None]] = []
    for model, task in JOB_TASKS.items():
        query = select(model.id, model.attempt).where(model.status == JobStatus.queued)
        if model is Evaluation:  # a sweep run's evaluations wait until their run has succeeded
            waiting = (
                select(Run.id)
                .where(Run.sweep_id.is_not(None), Run.status != JobStatus.succeeded)
                .scalar_subquery()
            )
            query = query.where(or_(~sweeps.PLANNED, model.run_id.is_(None), model.run_id.not_in(waiting)))
        for job_id, attempt in session.execute(query.order_by(model.id)):
            out.append((task, job_id, attempt, _priority(session, model, job_id)))
    return out
