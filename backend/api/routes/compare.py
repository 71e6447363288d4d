from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import TypeAdapter
from sqlalchemy import Select, bindparam, select

from backend.api.deps import (
    IdQuery,
    Int32Query,
    PageDep,
    PageParams,
    SessionDep,
    check_page_limit,
    read_connection,
)
from backend.api.errors import ApiError
from backend.api.read_pool import run_read
from backend.api.responses import page_response
from backend.models import Generation
from backend.models.jobs import GENERATION_COLUMNS, GENERATION_JSON_TEXT
from backend.schemas.common import INT32_MAX, Id, Page
from backend.schemas.jobs import CompareRow, GenerationPublic
from backend.services import compare as svc
from backend.services.pagination import fetch_page, keyset_select

router = APIRouter(tags=["generations"])
_ROW = TypeAdapter(CompareRow)

RunIds = Annotated[list[Id], Query(description="runs to compare (each stands for its latest evaluation)")]
EvalIds = Annotated[list[Id], Query(description="evaluations to compare (alternative to run_id)")]
Shots = Annotated[int | None, Query(ge=0, le=INT32_MAX, description="default: the smallest evaluated")]


@router.get(
    "/generations",
    response_model=Page[GenerationPublic],
    summary="Page through generated chains, of every evaluation or of one",
)
async def list_all_generations(page: PageDep, evaluation_id: IdQuery = None) -> Response:
    return await run_read(_all_generations_page, page, evaluation_id)


def _all_generations_page(page: PageParams, evaluation_id: int | None) -> Response:
    stmt = _all_generations_select(evaluation_id is not None, page.cursor is not None)
    with read_connection() as conn:
        items, nxt = fetch_page(conn, stmt, {"evaluation_id": evaluation_id}, page.cursor, page.limit)
    return page_response(GenerationPublic, items, nxt, page.limit, raw=GENERATION_JSON_TEXT)


@lru_cache
def _all_generations_select(by_evaluation: bool, after: bool) -> Select[Any]:
    stmt = select(*GENERATION_COLUMNS)
    if by_evaluation:
        stmt = stmt.where(Generation.evaluation_id == bindparam("evaluation_id"))
    return keyset_select(stmt, Generation.id, after=after)


@router.get(
    "/compare",
    response_model=Page[CompareRow],
    summary="Side-by-side: each question with every run's chain, extracted answer and correctness",
)
async def compare(
    run_id: RunIds = [],  # noqa: B006 (FastAPI copies defaults)
    evaluation_id: EvalIds = [],  # noqa: B006
    shots: Shots = None,
    seed: Int32Query = None,
    disagree: Annotated[bool, Query(description="only questions where the runs disagree")] = False,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1)] = 20,
) -> Response:
    check_page_limit(limit)
    if cursor and "\x00" in cursor:
        raise ApiError(422, "cursor must be a value returned as next_cursor", field="cursor")
    return await run_read(_compare_page, run_id, evaluation_id, shots, seed, disagree, cursor, limit)


def _compare_page(
    run_id: list[int],
    evaluation_id: list[int],
    shots: int | None,
    seed: int | None,
    disagree: bool,
    cursor: str | None,
    limit: int,
) -> Response:
    with read_connection() as conn:
        evals = svc.resolve_evaluations(conn, run_id, evaluation_id)
        shots, seed = svc.default_shots_seed(conn, evals[0], shots, seed)
        rows, nxt = svc.compare_page(
            conn, evals, shots=shots, seed=seed, disagree=disagree, cursor=cursor, limit=limit
        )
    return page_response(CompareRow, rows, nxt, limit)


@router.get(
    "/compare/{example_id:path}",
    response_model=CompareRow,
    summary="One question across several runs: question, gold answer and each run's chain",
)
def compare_one(
    example_id: str,
    session: SessionDep,
    run_id: RunIds = [],  # noqa: B006
    evaluation_id: EvalIds = [],  # noqa: B006
    shots: Shots = None,
    seed: Int32Query = None,
) -> Response:
    if "\x00" in example_id:
        raise ApiError(422, "example_id contains a NUL character", field="example_id")
    evals = svc.resolve_evaluations(session, run_id, evaluation_id)
    shots, seed = svc.default_shots_seed(session, evals[0], shots, seed)
    rows, _ = svc.compare_page(
        session, evals, shots=shots, seed=seed, disagree=False, cursor=None, limit=1, example_id=example_id
    )
    if not rows:
        raise ApiError(
            404,
            f"question {example_id} was not evaluated by evaluation {evals[0].id} "
            f"at shots={shots}, seed={seed}",
            field="example_id",
        )
    return Response(content=_ROW.dump_json(_ROW.validate_python(rows[0])), media_type="application/json")
