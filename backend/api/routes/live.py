"""The reads behind the UI's live panels: one request per tick gathers everything a panel shows (a run with its new
metric points, evaluations and sweep; a sweep with its table and runs; an annotation job), where the panel used
to make one request per resource. Each part is what the resource's own endpoint returns, bounded the same way:
the pieces are those endpoints' functions, called here, so the two can never disagree. Each read also takes the
sweeps the page's sidebar follows (`sweep=`, as `GET /status` does), so a page with a live panel costs one
request per tick, sidebar included."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend.api.deps import IdPath, PageParams, SessionDep, SettingsDep
from backend.api.routes import annotations, evaluations, runs, status, sweeps
from backend.models import Sweep
from backend.schemas.common import INT32_MAX
from backend.schemas.jobs import AnnotationLive, RunLive, SweepLive

router = APIRouter(tags=["live"])

MAX_EVALUATIONS = 200  # a run has a handful; the panel shows each as an expander


@router.get(
    "/runs/{run_id}/live",
    response_model=RunLive,
    summary="One read per tick for a run's live panel: the run, its metric points after `metrics_after`, "
    "its evaluations and its sweep's state",
)
def run_live(
    run_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    metrics_after: Annotated[
        int | None,
        Query(ge=0, le=INT32_MAX, description="the last step the caller holds: only later points are sent"),
    ] = None,
    sweep: status.FollowedSweeps = [],  # noqa: B006
) -> dict[str, Any]:
    run = runs.get_run_or_404(session, run_id)
    metrics = runs.list_metrics(run_id, session, PageParams(metrics_after, settings.page_max))
    evals = evaluations.list_evaluations(session, PageParams(None, MAX_EVALUATIONS), run_id=run_id)
    own = session.get(Sweep, run.sweep_id) if run.sweep_id is not None else None
    return {
        "run": run,
        "metrics": metrics,
        "evaluations": evals.items,
        "sweep": status.job_row("sweeps", own) if own is not None else None,
        "followed": status.followed(session, sweep),
    }


@router.get(
    "/sweeps/{sweep_id}/live",
    response_model=SweepLive,
    summary="One read per tick for a sweep's live panel: the sweep, its results table and its runs' state",
)
def sweep_live(
    sweep_id: IdPath,
    session: SessionDep,
    sweep: status.FollowedSweeps = [],  # noqa: B006
) -> dict[str, Any]:
    return {
        "sweep": sweeps.get_sweep(sweep_id, session),
        "table": sweeps.sweep_table(sweep_id, session),
        "runs": status.sweep_runs(session, sweep_id),
        "followed": status.followed(session, sweep),
    }


@router.get(
    "/annotations/{job_id}/live",
    response_model=AnnotationLive,
    summary="One read per tick for an annotation job's live panel: the job and the sweeps the page follows",
)
def annotation_live(
    job_id: IdPath,
    session: SessionDep,
    sweep: status.FollowedSweeps = [],  # noqa: B006
) -> dict[str, Any]:
    return {"job": annotations.get_annotation(job_id, session), "followed": status.followed(session, sweep)}
