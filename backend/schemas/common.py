"""Shapes shared by every resource: error bodies, pages, job status fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from aicd.data.record import json_problem

T = TypeVar("T")

MAX_ID = 2**63 - 1
"""Largest id any database here can hold (BIGINT / SQLite INTEGER); larger ids are refused as 422, never 500."""
INT32_MAX = 2**31 - 1

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""The id type of every request body field naming a row (`backend.api.deps` has the Path/Query forms)."""

NAME_MAX = 200
NAME_PATTERN = r"^\.*[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$"
"""Letters, digits, `_`, `-`, `.`, not only dots (a run/sweep name becomes a directory: `.`/`..` would escape)."""
NAME_RULE = f"1-{NAME_MAX} letters, digits, '_', '-' or '.', not only dots"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=NAME_MAX)]


def _no_nul(value: Any) -> Any:
    if (path := nul_path(value)) is not None:
        raise ValueError(f"contains a NUL character{' at ' + path if path else ''}, which cannot be stored")
    return value


def nul_path(value: Any, path: str = "") -> str | None:
    """Where a NUL character hides in a JSON-like value (`''` = the value itself), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return sub
            if (found := nul_path(item, sub)) is not None:
                return found
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if (found := nul_path(item, f"{path}.{i}" if path else str(i))) is not None:
                return found
    return None


NoNul = AfterValidator(_no_nul)
"""Annotated metadata: PostgreSQL text cannot hold NUL, so such input is a 422 naming the field, not a DB error."""
Text = Annotated[str, NoNul]

DESCRIPTION_MAX = 10_000
Description = Annotated[str, NoNul, StringConstraints(max_length=DESCRIPTION_MAX)]


def _storable_json(value: Any) -> Any:
    if (problem := json_problem(value)) is not None:
        where, what = problem
        # ctx["json_path"] lets the error handler name the field inside the value (`config.lr`)
        raise PydanticCustomError("unstorable_json", "{what}", {"what": what, "json_path": where[:200]})
    return value


StorableJson = AfterValidator(_storable_json)
"""Annotated metadata for free-form JSON that is stored (job configs): nesting capped at MAX_JSON_DEPTH, numbers
finite and within 64 bits, no NUL — so the database takes it (PostgreSQL's JSONB has no NaN) and every later read
serialises it; the 422 names the path inside the value."""


class ErrorDetail(BaseModel):
    message: str = Field(description="what is wrong, fit to show to a user")
    field: str | None = Field(None, description="the offending field, e.g. `config.weights` or `file:3`")
    errors: list[dict[str, Any]] | None = Field(
        None, description="every validation problem, when there are several"
    )


class ErrorBody(BaseModel):
    """Every 4xx/5xx response has this body."""

    detail: ErrorDetail


class Page(BaseModel, Generic[T]):
    """One page of a list. Pass `next_cursor` back as `cursor` for the next page; null means the end."""

    items: list[T]
    next_cursor: str | None = None
    limit: int


class ORM(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class JobPublic(ORM):
    """Status fields of every background job (annotation, run, evaluation, sweep)."""

    id: int
    status: str = Field(description="queued | running | succeeded | failed | cancelled | lost")
    progress_done: int
    progress_total: int
    error: str | None
    cancel_requested: bool
    attempt: int
    worker: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
