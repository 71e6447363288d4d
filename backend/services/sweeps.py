"""A planned sweep's state follows its children: one `runs` row per planned run, one `evaluations` row per
(run, evaluation dataset), each its own job.

The sweep row is only a summary of them, rebuilt by `refresh` whenever a child changes (a worker finishing a
child, a cancel, a resume, the reaper): `running` while any child is queued or running, then `cancelled` if
the sweep was cancelled, `failed` if any child failed or was lost (the others still finish), `cancelled` if a
child was cancelled on its own, else `succeeded`. A sweep without children is still being planned by its
own `aicd.sweep` job and keeps that job's status.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import ACTIVE, RESUMABLE, AnnotationJob, Evaluation, JobStatus, Run, Sweep
from backend.models.base import utcnow

SWEEP_CANCELLED = "cancelled with its sweep; resume the sweep to continue"
PLANNED = Evaluation.output_dir.startswith("sweeps/")
"""An evaluation the sweep planned (under <artifacts>/sweeps/<sweep>/evals/), not one a user started on a sweep's
run: only those belong to the sweep and wait for their run."""


@dataclass
class Children:
    runs: list[Run]
    evaluations: list[Evaluation]

    def __bool__(self) -> bool:
        return bool(self.runs)


def children(session: Session, sweep_id: int) -> Children:
    runs = list(session.scalars(select(Run).where(Run.sweep_id == sweep_id).order_by(Run.id)))
    evaluations = (
        list(
            session.scalars(
                select(Evaluation)
                .where(Evaluation.run_id.in_([r.id for r in runs]), PLANNED)
                .order_by(Evaluation.id)
            )
        )
        if runs
        else []
    )
    return Children(runs, evaluations)


def lock(session: Session, sweep_id: int) -> Sweep | None:
    """The sweep row, locked until the transaction ends: refreshes, cancels and plans never interleave."""
    return session.scalar(select(Sweep).where(Sweep.id == sweep_id).with_for_update())


def _close_blocked(kids: Children) -> None:
    """A queued evaluation whose run ended without succeeding can never start: it takes the run's status
    (resumable with it)."""
    ended = {r.id: r for r in kids.runs if r.status in RESUMABLE}
    for ev in kids.evaluations:
        if ev.status == JobStatus.queued and ev.run_id in ended:
            run = ended[ev.run_id]
            ev.status, ev.finished_at = run.status, utcnow()
            ev.error = f"its run {run.name} is {run.status}; resume the run or the sweep"


def summarise(sweep: Sweep, kids: Children) -> None:
    """Set the sweep's status, progress and error from its children (see the module docstring)."""
    evals_of: dict[int, list[Evaluation]] = {}
    for ev in kids.evaluations:
        evals_of.setdefault(ev.run_id or 0, []).append(ev)
    done = [
        r
        for r in kids.runs
        if r.status == JobStatus.succeeded
        and all(e.status == JobStatus.succeeded for e in evals_of.get(r.id, []))
    ]
    sweep.progress_total, sweep.progress_done = len(kids.runs), len(done)
    jobs = [*kids.runs, *kids.evaluations]
    if any(j.status in ACTIVE for j in jobs):
        sweep.status, sweep.finished_at, sweep.error = JobStatus.running, None, None
        return
    bad = [j for j in jobs if j.status in (JobStatus.failed, JobStatus.lost)]
    if sweep.cancel_requested:
        status, error = JobStatus.cancelled, "cancelled by request"
    elif bad:
        status = JobStatus.failed
        error = f"{len(bad)} of its {len(jobs)} runs and evaluations failed or were lost; resume the sweep"
    elif any(j.status == JobStatus.cancelled for j in jobs):
        status, error = JobStatus.cancelled, "some of its runs or evaluations were cancelled"
    else:
        status, error = JobStatus.succeeded, None
    if sweep.status != status or sweep.finished_at is None:
        sweep.finished_at = utcnow()
    sweep.status, sweep.error, sweep.cancel_requested = status, error, False


def settle(session: Session, sweep: Sweep) -> str | None:
    """Re-summarise a locked, planned sweep from its children (no commit); its status, None when it has
    no children yet (its planning job owns the status then)."""
    kids = children(session, sweep.id)
    if not kids:
        return None
    _close_blocked(kids)
    summarise(sweep, kids)
    return sweep.status


def refresh(session: Session, sweep_id: int) -> str | None:
    """Lock, settle and commit a sweep; its new status (None: not planned yet)."""
    sweep = lock(session, sweep_id)
    status = settle(session, sweep) if sweep is not None else None
    session.commit()
    return status


def cancel(session: Session, sweep: Sweep) -> None:
    """Cancel every child: queued ones at once, running ones through their own cancel flag (each worker
    checkpoints and stops within the cancel latency). The sweep shows `cancel_requested` until the last
    running child has stopped."""
    sweep.cancel_requested = True
    kids = children(session, sweep.id)
    now = utcnow()
    for job in (*kids.runs, *kids.evaluations):
        if job.status == JobStatus.queued:
            job.status, job.finished_at, job.error = JobStatus.cancelled, now, SWEEP_CANCELLED
        elif job.status == JobStatus.running:
            job.cancel_requested = True
    summarise(sweep, kids)
    session.commit()


def resume(session: Session, sweep: Sweep) -> list[Run | Evaluation]:
    """Requeue exactly the children that did not succeed (a new attempt each, from their checkpoints);
    return the ones whose message can go now: runs, and evaluations of runs that already succeeded (the
    others are sent when their run succeeds). Nothing that succeeded is trained or evaluated again."""
    kids = children(session, sweep.id)
    succeeded = {r.id for r in kids.runs if r.status == JobStatus.succeeded}
    ready: list[Run | Evaluation] = []
    for job in (*kids.runs, *kids.evaluations):
        if job.status in RESUMABLE:
            requeue(job)
        if job.status == JobStatus.queued and (isinstance(job, Run) or job.run_id in succeeded):
            ready.append(job)
    sweep.cancel_requested = False
    summarise(sweep, kids)
    session.commit()
    return ready


def requeue(job: AnnotationJob | Run | Evaluation | Sweep) -> None:
    """failed/cancelled/lost → queued under a new attempt (stale messages of the old one are ignored); a run
    continues from its checkpoint."""
    job.status = JobStatus.queued
    job.attempt += 1
    job.cancel_requested = False
    job.error = None
    job.finished_at = None
    job.worker = None
    if isinstance(job, Run):
        job.resume = True


def evaluation_waits(session: Session, evaluation_id: int) -> bool:
    """Whether an evaluation is a sweep's, of a run that has not succeeded yet (it must not start)."""
    row = session.execute(
        select(Run.status, Run.sweep_id)
        .join(Evaluation, Evaluation.run_id == Run.id)
        .where(Evaluation.id == evaluation_id, PLANNED)
    ).first()
    return row is not None and row.sweep_id is not None and row.status != JobStatus.succeeded


def sweep_of(session: Session, model: type, job_id: int) -> int | None:
    """The sweep a run or evaluation belongs to, if any."""
    if model is Run:
        return session.scalar(select(Run.sweep_id).where(Run.id == job_id))
    if model is Evaluation:
        return session.scalar(
            select(Run.sweep_id)
            .join(Evaluation, Evaluation.run_id == Run.id)
            .where(Evaluation.id == job_id, PLANNED)
        )
    return None


def queued_evaluations(session: Session, run_id: int) -> list[Evaluation]:
    """A sweep run that just succeeded: its evaluations, requeued if they were closed with an earlier
    attempt of the run, ready to be sent."""
    out = []
    query = select(Evaluation).where(Evaluation.run_id == run_id, PLANNED).order_by(Evaluation.id)
    for ev in session.scalars(query):
        if ev.status in RESUMABLE:
            requeue(ev)
        if ev.status == JobStatus.queued:
            out.append(ev)
    session.commit()
    return out
