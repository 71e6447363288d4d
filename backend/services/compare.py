"""Side-by-side view of one question across several evaluations (one per run).

One query per page: the first evaluation's generations are walked in example_id order on the unique index
(evaluation_id, shots, seed, example_id) and the others are LEFT JOINed on the same key, so a page costs a
range scan plus index lookups however large the evaluations are. `disagree=True` keeps only questions where
the extracted answers or the correctness differ (or a run has no chain for it). Only the needed columns are
read (no prompts, no ORM objects): this is the hot path of the UI's compare page.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Integer, Select, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from backend.api.errors import ApiError
from backend.models import Evaluation, Generation, Run

MAX_COMPARE = 8
_TABLE = Generation.__table__
_ALIASES = [_TABLE.alias(f"g{i}") for i in range(MAX_COMPARE)]  # fixed names keep the SQL cache warm
# the look-ups of every compare request, built once (executed with values; see `_page_select`)
_BY_EVALUATION = (
    select(Evaluation.id, Evaluation.run_id, Run.name)
    .outerjoin(Run, Run.id == Evaluation.run_id)
    .where(Evaluation.id.in_(bindparam("ids", expanding=True)))
)
_BY_RUN = (
    select(Evaluation.id, Evaluation.run_id, Evaluation.status, Run.name)
    .join(Run, Run.id == Evaluation.run_id)
    .where(Evaluation.run_id.in_(bindparam("ids", expanding=True)))
)
_MIN_SHOTS = select(func.min(Generation.shots)).where(Generation.evaluation_id == bindparam("ev"))
_MIN_SEED = select(func.min(Generation.seed)).where(
    Generation.evaluation_id == bindparam("ev"), Generation.shots == bindparam("shots")
)


@dataclass(frozen=True)
class EvalRef:
    id: int
    run_id: int | None
    run_name: str | None


def resolve_evaluations(
    session: Session | Connection, run_ids: list[int], evaluation_ids: list[int]
) -> list[EvalRef]:
    """Evaluations in the order asked for; a run stands for its latest succeeded (else latest) evaluation."""
    if not run_ids and not evaluation_ids:
        raise ApiError(422, "give at least one run_id or evaluation_id", field="run_id")
    if len(run_ids) + len(evaluation_ids) > MAX_COMPARE:
        raise ApiError(422, f"compare at most {MAX_COMPARE} runs at once", field="run_id")
    out: list[EvalRef] = []
    if evaluation_ids:
        found = {r.id: r for r in session.execute(_BY_EVALUATION, {"ids": evaluation_ids})}
        for eid in evaluation_ids:
            if eid not in found:
                raise ApiError(404, f"evaluation {eid} not found", field="evaluation_id")
            out.append(EvalRef(eid, found[eid].run_id, found[eid].name))
    if run_ids:
        best: dict[int, tuple[bool, int]] = {}
        names: dict[int, str] = {}
        for ev_id, run_id, status, name in session.execute(_BY_RUN, {"ids": run_ids}):
            key = (status == "succeeded", ev_id)
            if run_id not in best or key > best[run_id]:
                best[run_id], names[run_id] = key, name
        for rid in run_ids:
            if rid not in best:
                exists = session.scalar(select(Run.id).where(Run.id == rid)) is not None
                raise ApiError(
                    404,
                    f"run {rid} has no evaluation yet" if exists else f"run {rid} not found",
                    field="run_id",
                )
            out.append(EvalRef(best[rid][1], rid, names[rid]))
    return out


def default_shots_seed(
    session: Session | Connection, ev: EvalRef, shots: int | None, seed: int | None
) -> tuple[int, int]:
    if shots is None:
        shots = session.scalar(_MIN_SHOTS, {"ev": ev.id})
    if seed is None and shots is not None:
        seed = session.scalar(_MIN_SEED, {"ev": ev.id, "shots": shots})
    return (shots if shots is not None else 0), (seed if seed is not None else 0)


def compare_page(
    session: Session | Connection,
    evals: list[EvalRef],
    *,
    shots: int,
    seed: int,
    disagree: bool,
    cursor: str | None,
    limit: int,
    example_id: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    mode = "one" if example_id is not None else "after" if cursor else "first"
    params: dict[str, Any] = {f"ev{i}": ev.id for i, ev in enumerate(evals)}
    params.update(
        shots=shots, seed=seed, key=example_id if example_id is not None else cursor, limit=limit + 1
    )
    result = session.execute(_page_select(len(evals), disagree, mode), params).all()
    more = len(result) > limit
    rows: list[dict[str, Any]] = []
    for tup in result[:limit]:
        entries, answers = [], set()
        for i, ev in enumerate(evals):
            gid, generation, extracted, correct = tup[3 + 4 * i : 7 + 4 * i]
            entries.append(
                {
                    "evaluation_id": ev.id,
                    "run_id": ev.run_id,
                    "run_name": ev.run_name,
                    "generation": generation,
                    "extracted": extracted,
                    "correct": correct,
                }
            )
            answers.add((gid is not None, extracted or "", correct))
        agree = len(answers) == 1 and next(iter(answers))[0]
        rows.append(
            {
                "example_id": tup[0],
                "question": tup[1],
                "gold": tup[2],
                "shots": shots,
                "seed": seed,
                "entries": entries,
                "agree": agree,
            }
        )
    nxt = rows[-1]["example_id"] if more and rows else None
    return rows, nxt


@lru_cache
def _page_select(n: int, disagree: bool, mode: str) -> Select[Any]:
    """The page query for `n` evaluations, built once per shape and executed with bind parameters `ev0`..,
    `shots`, `seed`, `key` (the cursor, or the one example_id) and `limit` (building it per request cost more
    CPU than PostgreSQL spends on the page)."""
    base, others = _ALIASES[0], _ALIASES[1:n]
    cols = [base.c.example_id, base.c.question, base.c.gold]
    for g in (base, *others):
        cols += [g.c.id, g.c.generation, g.c.extracted, g.c.correct]
    shots, seed = bindparam("shots"), bindparam("seed")
    stmt = select(*cols).where(
        base.c.evaluation_id == bindparam("ev0"), base.c.shots == shots, base.c.seed == seed
    )
    joined = base
    for i, g in enumerate(others, start=1):
        joined = joined.outerjoin(
            g,
            and_(
                g.c.evaluation_id == bindparam(f"ev{i}"),
                g.c.shots == shots,
                g.c.seed == seed,
                g.c.example_id == base.c.example_id,
            ),
        )
    stmt = stmt.select_from(joined)
    if mode == "one":
        stmt = stmt.where(base.c.example_id == bindparam("key"))
    elif mode == "after":
        stmt = stmt.where(base.c.example_id > bindparam("key"))
    if disagree and others:
        conds = []
        for g in others:
            conds += [
                g.c.id.is_(None),
                g.c.correct != base.c.correct,
                func.coalesce(g.c.extracted, "") != func.coalesce(base.c.extracted, ""),
            ]
        stmt = stmt.where(or_(*conds))
    return stmt.order_by(base.c.example_id).limit(bindparam("limit", type_=Integer()))
