from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.common import INT32_MAX, NAME_RULE, ORM, Description, Name, Text


class DatasetImport(BaseModel):
    """Import a built-in dataset (gsm8k, svamp, multiarith, strategyqa, arith) or a server-side JSONL."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description=NAME_RULE)
    source: Text = Field(
        min_length=1, max_length=100, description="built-in dataset name (see `aicd data list`)"
    )
    split: Text = Field("train", max_length=100)
    limit: int | None = Field(None, gt=0, le=INT32_MAX)
    seed: int = Field(0, ge=0, le=INT32_MAX)
    description: Description = ""


class DatasetPublic(ORM):
    id: int
    name: str
    description: str
    source: str
    answer_kind: str | None
    n_examples: int
    created_at: datetime


class RationalePublic(ORM):
    id: int
    text: str
    source: str
    model: str | None
    meta: dict[str, Any]
    annotation_job_id: int | None


class DatasetRationalePublic(RationalePublic):
    example_id: int = Field(description="the example's `id` (as in /datasets/{id}/examples)")
    ext_id: str = Field(description="the example's id in the uploaded/imported data")


class ExamplePublic(ORM):
    id: int
    ext_id: str = Field(description="the example's id in the uploaded/imported data")
    question: str
    answer: str
    rationales: list[RationalePublic]
