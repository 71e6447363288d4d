"""The one record type every part of the workbench exchanges."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RationaleSource = Literal["teacher", "gold", "self"]
AnswerKind = Literal["number", "yesno"]


class Rationale(BaseModel):
    """One step-by-step explanation of an example's answer and where it came from."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    source: RationaleSource = "teacher"
    model: str | None = None  # teacher / self model that wrote it
    meta: dict[str, Any] = Field(default_factory=dict)


class Example(BaseModel):
    """A question with its gold answer (a normalised number string or "yes"/"no") and its rationales."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    rationales: list[Rationale] = Field(default_factory=list)

    @field_validator("id", "answer", mode="before")
    @classmethod
    def _to_str(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "yes" if value else "no"
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
