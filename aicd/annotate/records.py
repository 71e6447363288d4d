"""One stored rationale sample (or one failed attempt at it), keyed so nothing is asked for or stored twice."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RecordKey = tuple[str, int, str, str]
"""(question_id, sample_index, teacher, prompt_hash)."""


class Usage(BaseModel):
    """Tokens attributed to one record. With n=k in one request the prompt tokens go to the first sample and the
    completion tokens are split evenly, so summing records gives the request totals."""

    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class AnnotationRecord(BaseModel):
    """A raw teacher/self/gold rationale before filtering, as written to the raw store."""

    model_config = ConfigDict(extra="ignore")

    question_id: str
    sample_index: int = Field(ge=0)
    teacher: str
    prompt_hash: str
    source: Literal["teacher", "gold", "self"] = "teacher"
    status: Literal["ok", "failed"] = "ok"
    text: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    attempts: int = 1
    latency_s: float | None = None
    created_at: float = Field(default_factory=time.time)
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> RecordKey:
        return (self.question_id, self.sample_index, self.teacher, self.prompt_hash)


def latest_ok(records: Iterable[AnnotationRecord]) -> list[AnnotationRecord]:
    """One ok record per key (the first stored), failures dropped."""
    seen: dict[RecordKey, AnnotationRecord] = {}
    for rec in records:
        if rec.status == "ok" and rec.key not in seen:
            seen[rec.key] = rec
    return list(seen.values())
