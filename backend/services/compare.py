"""Side-by-side view of one question across several evaluations (one per run).

One query per page: the first evaluation's generations are walked in example_id order on the unique index
(evaluation_id, shots, seed, example_id) and the others are LEFT JOINed on the same key, so a page costs a
range scan plus index lookups however large the evaluations are. `disagree=True` keeps only questions where
the extracted answers or the correctness differ (or a run has no chain for it).
"""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from backend.api.errors import ApiError
from backend.models import Evaluation, Generation, Run
from backend.schemas.jobs import CompareEntry, CompareRow

MAX_COMPARE = 8


def resolve_evaluations(session: Session, run_ids: list[int], evaluation_ids: list[int]) -> list[Evaluation]:
    """Evaluations in the order asked for; a run stands for its latest succeeded (else latest) evaluation."""
    out: list[Evaluation] = []
    for eid in evaluation_ids:
        ev = session.get(Evaluation, eid)
        if ev is None:
            raise ApiError(404, f"evaluation {eid} not found", field="evaluation_id")
        out.append(ev)
    for rid in run_ids:
        if session.get(Run, rid) is None:
            raise ApiError(404, f"run {rid} not found", field="run_id")
        ev = session.scalar(
            select(Evaluation).where(Evaluation.run_id == rid)
            .order_by((Evaluation.status == "succeeded").desc(), Evaluation.id.desc()).limit(1)
        )
        if ev is None:
            raise ApiError(404, f"run {rid} has no evaluation yet", field="run_id")
        out.append(ev)
    if not out:
        raise ApiError(422, "give at least one run_id or evaluation_id", field="run_id")
    if len(out) > MAX_COMPARE:
        raise ApiError(422, f"compare at most {MAX_COMPARE} runs at once", field="run_id")
    return out


def default_shots_seed(session: Session, ev: Evaluation, shots: int | None, seed: int | None) -> tuple[int, int]:
    if shots is None:
        shots = session.scalar(select(func.min(Generation.shots)).where(Generation.evaluation_id == ev.id))
    if seed is None and shots is not None:
        seed = session.scalar(select(func.min(Generation.seed)).where(
            Generation.evaluation_id == ev.id, Generation.shots == shots))
    return (shots if shots is not None else 0), (seed if seed is not None else 0)


def compare_page(session: Session, evals: list[Evaluation], *, shots: int, seed: int, disagree: bool,
                 cursor: str | None, limit: int, example_id: str | None = None) -> tuple[list[CompareRow], str | None]:
    base = aliased(Generation, name="g0")
    others = [aliased(Generation, name=f"g{i}") for i in range(1, len(evals))]
    stmt = select(base, *others).where(base.evaluation_id == evals[0].id, base.shots == shots, base.seed == seed)
    for ev, g in zip(evals[1:], others, strict=True):
        stmt = stmt.outerjoin(g, and_(g.evaluation_id == ev.id, g.shots == shots, g.seed == seed,
                                      g.example_id == base.example_id))
    if example_id is not None:
        stmt = stmt.where(base.example_id == example_id)
    elif cursor:
        stmt = stmt.where(base.example_id > cursor)
    if disagree and others:
        conds = []
        for g in others:
            conds += [g.id.is_(None), g.correct != base.correct,
                      func.coalesce(g.extracted, "") != func.coalesce(base.extracted, "")]
        stmt = stmt.where(or_(*conds))
    stmt = stmt.order_by(base.example_id).limit(limit + 1)
    result = session.execute(stmt).all()
    more = len(result) > limit
    rows: list[CompareRow] = []
    run_names = _run_names(session, evals)
    for tup in result[:limit]:
        g0 = tup[0]
        entries = []
        for ev, g in zip(evals, tup, strict=True):
            entries.append(CompareEntry(
                evaluation_id=ev.id, run_id=ev.run_id, run_name=run_names.get(ev.run_id),
                generation=g.generation if g is not None else None,
                extracted=g.extracted if g is not None else None,
                correct=g.correct if g is not None else None))
        agree = all(g is not None for g in tup) and len({(g.extracted or "", g.correct) for g in tup}) == 1
        rows.append(CompareRow(example_id=g0.example_id, question=g0.question, gold=g0.gold, shots=shots,
                               seed=seed, entries=entries, agree=agree))
    nxt = rows[-1].example_id if more and rows else None
    return rows, nxt


def _run_names(session: Session, evals: list[Evaluation]) -> dict[int | None, str]:
    ids = {ev.run_id for ev in evals if ev.run_id is not None}
    if not ids:
        return {}
    return dict(session.execute(select(Run.id, Run.name).where(Run.id.in_(ids))).all())
