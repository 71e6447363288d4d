"""Idempotent writes from workers: upserts on natural keys, so a resumed job never duplicates rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from aicd.data.record import Example, Rationale
from backend.models import Artifact, Generation, MetricPoint
from backend.models import Example as ExampleRow


def upsert(
    session: Session,
    model: type,
    rows: list[dict[str, Any]],
    keys: list[str],
    update: list[str] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE (or DO NOTHING) on PostgreSQL and SQLite."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).values(rows)
    if update:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    session.execute(stmt)


METRIC_COLUMNS = ("epoch", "loss", "lr")


def metric_row(run_id: int, step: int, metrics: dict[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool | None)}
    return {
        "run_id": run_id,
        "step": step,
        "values": values,
        **{c: float(metrics[c]) if isinstance(metrics.get(c), int | float) else None for c in METRIC_COLUMNS},
    }


def save_metric(session: Session, run_id: int, step: int, metrics: dict[str, Any]) -> None:
    upsert(
        session,
        MetricPoint,
        [metric_row(run_id, step, metrics)],
        ["run_id", "step"],
        ["epoch", "loss", "lr", "values"],
    )


def drop_metrics_after(session: Session, run_id: int, step: int) -> None:
    session.execute(delete(MetricPoint).where(MetricPoint.run_id == run_id, MetricPoint.step > step))


def last_metric_step(session: Session, run_id: int) -> int:
    """The newest step stored for the run (0 when none)."""
    return session.scalar(select(func.max(MetricPoint.step)).where(MetricPoint.run_id == run_id)) or 0


GEN_FIELDS = ("question", "gold", "shot_ids", "prompt", "generation", "extracted", "correct")


def save_generations(session: Session, evaluation_id: int, records: list[Any]) -> None:
    rows = [
        {
            "evaluation_id": evaluation_id,
            "example_id": r.example_id,
            "shots": r.shots,
            "seed": r.seed,
            **{f: getattr(r, f) for f in GEN_FIELDS},
        }
        for r in records
    ]
    for start in range(0, len(rows), 500):
        upsert(
            session,
            Generation,
            rows[start : start + 500],
            ["evaluation_id", "shots", "seed", "example_id"],
            list(GEN_FIELDS),
        )


def register_artifacts(session: Session, root: Path, paths: list[Path], kind: str, **owner: int) -> None:
    rows = []
    for path in paths:
        if path.is_file():
            rows.append(
                {
                    "path": str(path.resolve().relative_to(root)),
                    "kind": kind,
                    "size_bytes": path.stat().st_size,
                    **owner,
                }
            )
    upsert(session, Artifact, rows, ["path"], ["kind", "size_bytes"])


def load_examples(session: Session, dataset_id: int) -> list[Example]:
    """A stored dataset as core `Example` records (with every stored rationale), in upload order."""
    rows = session.scalars(
        select(ExampleRow)
        .where(ExampleRow.dataset_id == dataset_id)
        .options(selectinload(ExampleRow.rationales))
        .order_by(ExampleRow.position)
    )
    return [
        Example(
            id=r.ext_id,
            question=r.question,
            answer=r.answer,
            rationales=[
                Rationale(text=x.text, source=x.source, model=x.model, meta=x.meta) for x in r.rationales
            ],
        )
        for r in rows
    ]
