"""The results aggregator (`aicd.results`) served to the UI, so the Results page and `results.md` share one rule."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from aicd.results import CAPTION, aggregate, format_cell
from backend.api.errors import ApiError

router = APIRouter(prefix="/results", tags=["results"])
MAX_OBSERVATIONS = 200_000
SCALARS = (str, int, float, bool, type(None))  # what a cell's key and a run id may be


class AggregateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    observations: list[dict[str, Any]] = Field(
        ..., max_length=MAX_OBSERVATIONS, description="flat records: the `by` fields, `run` and `accuracy`"
    )
    by: list[str] = Field(
        ..., min_length=1, description="fields that define a cell (e.g. label, dataset, shots)"
    )
    scale: float = Field(
        100.0, gt=0, description="factor from `accuracy` to the printed cell (100: fractions)"
    )


class AggregateOut(BaseModel):
    caption: str
    rows: list[dict[str, Any]]


@router.post("/aggregate", response_model=AggregateOut, summary="mean ± std over training runs, n, cell text")
def aggregate_results(body: AggregateIn) -> AggregateOut:
    for i, obs in enumerate(body.observations):
        missing = [k for k in (*body.by, "run") if k not in obs]
        if missing:
            raise ApiError(422, f"observation {i} lacks {', '.join(missing)}", field="observations")
        nested = [k for k in (*body.by, "run") if not isinstance(obs[k], SCALARS)]
        if nested:
            raise ApiError(
                422, f"observation {i}: {', '.join(nested)} must be plain values", field="observations"
            )
        value = obs.get("accuracy")
        if value is not None and (not isinstance(value, int | float) or not 0 <= value <= 100):
            raise ApiError(
                422,
                f"observation {i}: accuracy must be a number from 0 to 100 (or null)",
                field="observations",
            )
    rows = aggregate(body.observations, body.by)
    for row in rows:
        row["text"] = format_cell(row["mean"], row["std"], row["n"], scale=body.scale)
    return AggregateOut(caption=CAPTION, rows=rows)
