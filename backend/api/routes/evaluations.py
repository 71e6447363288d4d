from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import Select, bindparam, select

from backend.api.deps import IdPath, IdQuery, Int32Query, PageDep, PageParams, SessionDep, read_connection
from backend.api.errors import get_or_404, not_found
from backend.api.read_pool import run_read
from backend.api.responses import page_response
from backend.models import Evaluation, Generation, JobStatus
from backend.models.jobs import GENERATION_COLUMNS, GENERATION_JSON_TEXT
from backend.schemas.common import Page
from backend.schemas.jobs import EvaluationCreate, EvaluationPublic, GenerationPublic
from backend.services import lifecycle
from backend.services.configs import eval_config
from backend.services.pagination import fetch_page, keyset_page, keyset_select

router = APIRouter(prefix="/evaluations", tags=["evaluations"])


@router.post(
    "",
    status_code=202,
    response_model=EvaluationPublic,
    summary="Evaluate a run (or a model) on a dataset at several shot counts and seeds",
)
def create_evaluation(body: EvaluationCreate, session: SessionDep) -> Evaluation:
    ev = Evaluation(run_id=body.run_id, dataset_id=body.dataset_id, config={}, output_dir="")
    cfg = eval_config(
        session, body.run_id, body.dataset_id, body.shots_dataset_id, body.config, "evaluations"
    )
    session.add(ev)
    session.flush()
    ev.output_dir = f"evaluations/{ev.id}"
    ev.config = cfg.model_copy(update={"output_dir": ev.output_dir}).model_dump(mode="json")
    lifecycle.enqueue(session, ev)
    return ev


@router.get("", response_model=Page[EvaluationPublic], summary="List evaluations (newest first)")
def list_evaluations(
    session: SessionDep,
    page: PageDep,
    run_id: IdQuery = None,
    status: Annotated[JobStatus | None, Query()] = None,
) -> Page[EvaluationPublic]:
    stmt = select(Evaluation)
    if run_id is not None:
        stmt = stmt.where(Evaluation.run_id == run_id)
    if status is not None:
        stmt = stmt.where(Evaluation.status == status)
    items, nxt = keyset_page(session, stmt, Evaluation.id, page.cursor, page.limit, desc=True)
    return Page[EvaluationPublic](items=items, next_cursor=nxt, limit=page.limit)


def get_eval_or_404(session: SessionDep, evaluation_id: int) -> Evaluation:
    ev = get_or_404(session, Evaluation, evaluation_id, "evaluation")
    return ev


@router.get(
    "/{evaluation_id}",
    response_model=EvaluationPublic,
    summary="Status, progress and accuracy per (shots, seed) and per shots",
)
def get_evaluation(evaluation_id: IdPath, session: SessionDep) -> Evaluation:
    return get_eval_or_404(session, evaluation_id)


@router.get(
    "/{evaluation_id}/generations",
    response_model=Page[GenerationPublic],
    summary="Page through every generated chain of an evaluation",
)
async def list_generations(
    evaluation_id: IdPath,
    page: PageDep,
    shots: Int32Query = None,
    seed: Int32Query = None,
    correct: Annotated[bool | None, Query()] = None,
) -> Response:
    return await run_read(_generations_page, evaluation_id, page, shots, seed, correct)


def _generations_page(
    evaluation_id: int, page: PageParams, shots: int | None, seed: int | None, correct: bool | None
) -> Response:
    stmt = _generations_select(shots is not None, seed is not None, correct, page.cursor is not None)
    params = {"evaluation_id": evaluation_id, "shots": shots, "seed": seed}
    with read_connection() as conn:
        items, nxt = fetch_page(conn, stmt, params, page.cursor, page.limit)
        # a generation row proves its evaluation exists (foreign key): only an empty page needs the look-up
        if not items and conn.scalar(select(Evaluation.id).where(Evaluation.id == evaluation_id)) is None:
            raise not_found("evaluation", evaluation_id)
    return page_response(GenerationPublic, items, nxt, page.limit, raw=GENERATION_JSON_TEXT)


@lru_cache
def _generations_select(by_shots: bool, by_seed: bool, correct: bool | None, after: bool) -> Select[Any]:
    stmt = select(*GENERATION_COLUMNS).where(Generation.evaluation_id == bindparam("evaluation_id"))
    if by_shots:
        stmt = stmt.where(Generation.shots == bindparam("shots"))
    if by_seed:
        stmt = stmt.where(Generation.seed == bindparam("seed"))
    if correct is not None:  # `IS true` takes no bind parameter: one statement per value
        stmt = stmt.where(Generation.correct.is_(correct))
    return keyset_select(stmt, Generation.id, after=after)


@router.post("/{evaluation_id}/cancel", response_model=EvaluationPublic)
def cancel_evaluation(evaluation_id: IdPath, session: SessionDep) -> Evaluation:
    ev = get_eval_or_404(session, evaluation_id)
    lifecycle.request_cancel(session, ev)
    return ev


@router.post(
    "/{evaluation_id}/resume",
    status_code=202,
    response_model=EvaluationPublic,
    summary="Resume: generations already stored are kept, the rest are produced",
)
def resume_evaluation(evaluation_id: IdPath, session: SessionDep) -> Evaluation:
    ev = get_eval_or_404(session, evaluation_id)
    lifecycle.resume(session, ev)
    return ev
