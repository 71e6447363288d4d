"""One aggregated read for the UI's live views: every active job of every kind and the sweeps a page follows,
so a page polls one request per tick (not one per job)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import SessionDep
from backend.models import AnnotationJob, Evaluation, JobStatus, Run, Sweep
from backend.schemas.common import Id

router = APIRouter(prefix="/status", tags=["status"])

ACTIVE = (JobStatus.queued, JobStatus.running)
MAX_ACTIVE = 500  # per kind: a page shows a summary, never thousands of rows
MAX_SWEEPS = 20


def job_row(kind: str, job: Any) -> dict[str, Any]:
    """What a live view needs of a job: its state and progress (no config, no results)."""
    row = {
        "kind": kind,
        "id": job.id,
        "name": getattr(job, "name", None),
        "status": str(job.status),
        "cancel_requested": bool(job.cancel_requested),
        "progress_done": job.progress_done,
        "progress_total": job.progress_total,
    }
    if isinstance(job, Run):
        row |= {"step": job.step, "total_steps": job.total_steps, "sweep_id": job.sweep_id}
    return row


def sweep_runs(session: Session, sweep_id: int) -> list[dict[str, Any]]:
    """The runs of a sweep in launch order, as `job_row`s (at most MAX_ACTIVE)."""
    rows = session.scalars(select(Run).where(Run.sweep_id == sweep_id).order_by(Run.id).limit(MAX_ACTIVE))
    return [job_row("runs", r) for r in rows]


FollowedSweeps = Annotated[
    list[Id],
    Query(max_length=MAX_SWEEPS, description="sweeps to report with their runs (unknown ids are left out)"),
]


def followed(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    """The sweeps `ids` (each once, unknown ones left out) as `job_row`s with their `runs`: what a page's
    sidebar follows. Every live read takes them too, so a page that polls a panel pays one request per tick."""
    rows = []
    for sweep_id in dict.fromkeys(ids):
        row = session.get(Sweep, sweep_id)
        if row is not None:
            rows.append({**job_row("sweeps", row), "runs": sweep_runs(session, sweep_id)})
    return rows


@router.get(
    "", summary="Active jobs of every kind and the followed sweeps with their runs: one read per tick"
)
def status_summary(session: SessionDep, sweep: FollowedSweeps = []) -> dict[str, Any]:  # noqa: B006
    kinds = {"runs": Run, "evaluations": Evaluation, "sweeps": Sweep, "annotations": AnnotationJob}
    jobs: list[dict[str, Any]] = []
    for kind, model in kinds.items():
        rows = session.scalars(
            select(model).where(model.status.in_(ACTIVE)).order_by(model.id.desc()).limit(MAX_ACTIVE)
        )
        jobs += [job_row(kind, j) for j in rows]
    return {"active": len(jobs), "jobs": jobs, "sweeps": followed(session, sweep)}
