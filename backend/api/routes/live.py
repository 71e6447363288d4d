"""The reads behind the Runs page's live panels: one request per tick gathers everything a panel shows (a run with
its new metric points, evaluations and sweep; a sweep with its table and runs), where the panel used to make one
request per resource. Each part is what the resource's own endpoint returns, bounded the same way: the pieces are
those endpoints' functions, called here, so the two can never disagree."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend.api.deps import IdPath, PageParams, SessionDep, SettingsDep
from backend.api.routes import evaluations, runs, status, sweeps
from backend.models import Sweep
from backend.schemas.common import INT32_MAX
from backend.schemas.jobs import RunLive, SweepLive

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
) -> dict[str, Any]:
    run = runs.get_run_or_404(session, run_id)
    metrics = runs.list_metrics(run_id, session, PageParams(metrics_after, settings.page_max))
    evals = evaluations.list_evaluations(session, PageParams(None, MAX_EVALUATIONS), run_id=run_id)
    sweep = session.get(Sweep, run.sweep_id) if run.sweep_id is not None else None
    return {
        "run": run,
        "metrics": metrics,
        "evaluations": evals.items,
        "sweep": status.job_row("sweeps", sweep) if sweep is not None else None,
    }


@router.get(
    "/sweeps/{sweep_id}/live",
    response_model=SweepLive,
    summary="One read per tick for a sweep's live panel: the sweep, its results table and its runs' state",
)
def sweep_live(sweep_id: IdPath, session: SessionDep) -> dict[str, Any]:
    return {
        "sweep": sweeps.get_sweep(sweep_id, session),
        "table": sweeps.sweep_table(sweep_id, session),
        "runs": status.sweep_runs(session, sweep_id),
    }
