"""Shapes shared by every resource: error bodies, pages, job status fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


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
