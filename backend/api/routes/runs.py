from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import Select, bindparam, select

from backend.api.deps import IdPath, IdQuery, PageDep, PageParams, SessionDep, read_connection
from backend.api.errors import ApiError, get_or_404
from backend.api.read_pool import run_read
from backend.api.responses import page_response
from backend.models import JobStatus, MetricPoint, Run
from backend.models.jobs import json_as_text
from backend.schemas.common import Page
from backend.schemas.jobs import MetricPointPublic, RunCreate, RunPublic
from backend.services import lifecycle
from backend.services.configs import train_config
from backend.services.pagination import fetch_page, keyset_select

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post(
    "",
    status_code=202,
    response_model=RunPublic,
    summary="Create and queue a training run (student model, dataset, objective, ω schedule, n, ...)",
)
def create_run(body: RunCreate, session: SessionDep) -> Run:
    cfg = train_config(session, body.name, body.dataset_id, body.config)
    if session.scalar(select(Run.id).where(Run.name == cfg.name)) is not None:
        raise ApiError(409, f"a run named '{cfg.name}' already exists", field="name")
    run = Run(
        name=cfg.name,
        dataset_id=body.dataset_id,
        config=cfg.model_dump(mode="json"),
        run_dir=f"runs/{cfg.name}",
        total_steps=cfg.max_steps or 0,
    )
    session.add(run)
    session.flush()
    lifecycle.enqueue(session, run)
    return run


_JSON_TEXT = ("config", "last_metrics")
_LIST = select(*json_as_text((Run.__table__.c[name] for name in RunPublic.model_fields), _JSON_TEXT))
"""What a listed run shows, read as plain rows (no ORM instances for a page of 50 runs with their configs);
built once: coercing its 21 columns again on every request costs as much as the query itself."""


@router.get("", response_model=Page[RunPublic], summary="List runs (newest first)")
async def list_runs(
    page: PageDep,
    status: Annotated[JobStatus | None, Query()] = None,
    sweep_id: IdQuery = None,
) -> Response:
    return await run_read(_runs_page, page, status, sweep_id)


def _runs_page(page: PageParams, status: JobStatus | None, sweep_id: int | None) -> Response:
    stmt = _list_select(status is not None, sweep_id is not None, page.cursor is not None)
    params = {"status": status, "sweep_id": sweep_id}
    with read_connection() as conn:
        items, nxt = fetch_page(conn, stmt, params, page.cursor, page.limit)
    return page_response(RunPublic, items, nxt, page.limit, raw=_JSON_TEXT)


@lru_cache
def _list_select(by_status: bool, by_sweep: bool, after: bool) -> Select[Any]:
    stmt = _LIST
    if by_status:
        stmt = stmt.where(Run.status == bindparam("status"))
    if by_sweep:
        stmt = stmt.where(Run.sweep_id == bindparam("sweep_id"))
    return keyset_select(stmt, Run.id, after=after, desc=True)


def get_run_or_404(session: SessionDep, run_id: int) -> Run:
    run = get_or_404(session, Run, run_id, "run")
    return run


@router.get("/{run_id}", response_model=RunPublic, summary="Status, step/total_steps and last metrics")
def get_run(run_id: IdPath, session: SessionDep) -> Run:
    return get_run_or_404(session, run_id)


@router.get(
    "/{run_id}/metrics",
    response_model=Page[MetricPointPublic],
    summary="Metric points in step order; pass next_cursor (a step) to get the ones after it",
)
def list_metrics(run_id: IdPath, session: SessionDep, page: PageDep) -> Page[MetricPointPublic]:
    get_run_or_404(session, run_id)
    stmt = select(MetricPoint).where(MetricPoint.run_id == run_id)
    if page.cursor is not None:
        stmt = stmt.where(MetricPoint.step > page.cursor)
    rows = list(session.scalars(stmt.order_by(MetricPoint.step).limit(page.limit + 1)))
    nxt = str(rows[page.limit - 1].step) if len(rows) > page.limit else None
    return Page[MetricPointPublic](items=rows[: page.limit], next_cursor=nxt, limit=page.limit)


@router.post(
    "/{run_id}/cancel",
    response_model=RunPublic,
    summary="Cancel: queued runs stop at once, running ones checkpoint and stop within seconds",
)
def cancel_run(run_id: IdPath, session: SessionDep) -> Run:
    run = get_run_or_404(session, run_id)
    lifecycle.request_cancel(session, run)
    return run


@router.post(
    "/{run_id}/resume",
    status_code=202,
    response_model=RunPublic,
    summary="Resume a failed, cancelled or lost run from its last checkpoint",
)
def resume_run(run_id: IdPath, session: SessionDep) -> Run:
    run = get_run_or_404(session, run_id)
    lifecycle.resume(session, run)
    return run
