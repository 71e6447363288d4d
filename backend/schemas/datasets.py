from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.common import ORM

NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,200}$"


class DatasetImport(BaseModel):
    """Import a built-in dataset (gsm8k, svamp, multiarith, strategyqa, arith) or a server-side JSONL."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    source: str = Field(min_length=1, description="built-in dataset name (see `aicd data list`)")
    split: str = "train"
    limit: int | None = Field(None, gt=0)
    seed: int = 0
    description: str = ""


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


class ExamplePublic(ORM):
    id: int
    ext_id: str = Field(description="the example's id in the uploaded/imported data")
    question: str
    answer: str
    rationales: list[RationalePublic]
