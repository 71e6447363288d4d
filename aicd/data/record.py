"""The one record type every part of the workbench exchanges."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RationaleSource = Literal["teacher", "gold", "self"]
AnswerKind = Literal["number", "yesno"]

MAX_JSON_DEPTH = 32
"""Deepest nesting of a free-form JSON value (a rationale's `meta`, a job config): far beyond any real use, and
far below the depth at which parsing or serialising it (pydantic, json) fails, so whatever is stored is read."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """(path, problem) for the first part of a JSON-like value that cannot be stored and read back everywhere:
    nesting deeper than `max_depth`, a NaN/inf number, an integer past 64 bits, a NUL character; else None.
    Iterative, so a value nested thousands of levels deep is reported rather than overflowing the stack."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth + 1 > max_depth:
                return path, f"is nested deeper than {max_depth} levels"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, sub in reversed(list(pairs)):
                sub_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return sub_path, "contains a NUL character, which cannot be stored"
                stack.append((sub, sub_path, depth + 1))
        elif isinstance(item, str):
            if "\x00" in item:
                return path, "contains a NUL character, which cannot be stored"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, "must be a finite number (not NaN or infinity)"
        elif isinstance(item, int) and not isinstance(item, bool):
            if not INT64_MIN <= item <= INT64_MAX:
                return path, "is an integer outside the 64-bit range"
    return None


class Rationale(BaseModel):
    """One step-by-step explanation of an example's answer and where it came from."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    source: RationaleSource = "teacher"
    model: str | None = None  # teacher / self model that wrote it
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("meta")
    @classmethod
    def _storable_meta(cls, value: dict[str, Any]) -> dict[str, Any]:
        if (problem := json_problem(value)) is not None:
            where, what = problem
            raise ValueError(f"{what} (at {where[:80]})" if where else what)
        return value


class Example(BaseModel):
    """A question with its gold answer (a normalised number string or "yes"/"no") and its rationales."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    rationales: list[Rationale] = Field(default_factory=list)
    # Examples sharing a hidden rule (e.g. a per-episode offset): episodes and k-shot prompts draw all their
    # shots from the final/test item's group. None (the default, not written to JSONL) = one common pool.
    group: str | None = Field(None, min_length=1, exclude_if=lambda v: v is None)

    @field_validator("id", "answer", mode="before")
    @classmethod
    def _to_str(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float) and not math.isfinite(value):  # JSON's NaN / Infinity: no answer at all
            raise ValueError("must be a finite number (not NaN or infinity)")
        if isinstance(value, int | float):
            return format_number(value)
        return value


def format_number(value: float | int) -> str:
    """Render 51.0 as "51" and 2.50 as "2.5" so gold and predicted answers compare as strings."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return repr(value).rstrip("0").rstrip(".")
    return str(value)
