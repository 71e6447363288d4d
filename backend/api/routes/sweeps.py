from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from backend.api.deps import IdPath, PageDep, SessionDep
from backend.api.errors import ApiError, get_or_404
from backend.models import Sweep
from backend.schemas.common import Page
from backend.schemas.jobs import SweepCreate, SweepPublic, SweepTable
from backend.services import lifecycle
from backend.services.configs import sweep_config
from backend.services.pagination import keyset_page

router = APIRouter(prefix="/sweeps", tags=["sweeps"])


@router.post(
    "",
    status_code=202,
    response_model=SweepPublic,
    summary="Queue a sweep: the grid of runs (objective × ω × seed × ...) each evaluated at several shots",
)
def create_sweep(body: SweepCreate, session: SessionDep) -> Sweep:
    cfg = sweep_config(session, body.name, body.config, body.dataset_id, body.eval_dataset_ids)
    if session.scalar(select(Sweep.id).where(Sweep.name == cfg.name)) is not None:
        raise ApiError(409, f"a sweep named '{cfg.name}' already exists", field="name")
    sweep = Sweep(name=cfg.name, config=cfg.model_dump(mode="json"))
    session.add(sweep)
    session.flush()
    lifecycle.enqueue(session, sweep)
    return sweep


@router.get("", response_model=Page[SweepPublic], summary="List sweeps (newest first)")
def list_sweeps(session: SessionDep, page: PageDep) -> Page[SweepPublic]:
    items, nxt = keyset_page(session, select(Sweep), Sweep.id, page.cursor, page.limit, desc=True)
    return Page[SweepPublic](items=items, next_cursor=nxt, limit=page.limit)


def _get(session: SessionDep, sweep_id: int) -> Sweep:
    sweep = get_or_404(session, Sweep, sweep_id, "sweep")
    return sweep


@router.get("/{sweep_id}", response_model=SweepPublic)
def get_sweep(sweep_id: IdPath, session: SessionDep) -> Sweep:
    return _get(session, sweep_id)


@router.get("/{sweep_id}/table", response_model=SweepTable, summary="The sweep's results table (rows so far)")
def sweep_table(sweep_id: IdPath, session: SessionDep) -> SweepTable:
    sweep = _get(session, sweep_id)
    rows = sweep.table_rows or []
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return SweepTable(sweep_id=sweep.id, status=sweep.status, columns=columns, rows=rows)


@router.post("/{sweep_id}/cancel", response_model=SweepPublic)
def cancel_sweep(sweep_id: IdPath, session: SessionDep) -> Sweep:
    sweep = _get(session, sweep_id)
    lifecycle.request_cancel(session, sweep)
    return sweep


@router.post(
    "/{sweep_id}/resume",
    status_code=202,
    response_model=SweepPublic,
    summary="Resume: finished runs and evaluations are skipped, unfinished ones continue",
)
def resume_sweep(sweep_id: IdPath, session: SessionDep) -> Sweep:
    sweep = _get(session, sweep_id)
    lifecycle.resume(session, sweep)
    return sweep
