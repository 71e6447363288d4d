"""Create/Public shapes of annotation jobs, runs, evaluations, sweeps and what they produce."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.common import NAME_RULE, ORM, Id, JobPublic, Name, Page, StorableJson

Config = Annotated[dict[str, Any], StorableJson]
"""A config dict as sent; what the database could not store or a read could not serialise (NUL characters,
NaN/inf, integers past 64 bits, nesting deeper than MAX_JSON_DEPTH) is refused here, naming the path."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnnotationCreate(_In):
    dataset_id: Id
    config: Config = Field(
        default_factory=dict,
        description="AnnotateConfig fields (source, base_url, api_key, teacher, k, temperature, ...). "
        "The api_key is stored server-side (per base URL, reused by later jobs that omit it) and never returned.",
    )


class AnnotationPublic(JobPublic):
    dataset_id: int
    config: dict[str, Any]
    has_api_key: bool
    report: dict[str, Any] | None


class RunCreate(_In):
    name: Name | None = Field(None, description=f"unique ({NAME_RULE}); default: from the config")
    dataset_id: Id | None = Field(None, description="train on this stored dataset (else config.dataset)")
    config: Config = Field(
        default_factory=dict,
        description="TrainConfig fields: model, objective, n_shots, schedule, omega, weights, lr, epochs, "
        "max_steps, batch_size, ... (output_dir is chosen by the server)",
    )


class RunPublic(JobPublic):
    name: str
    sweep_id: int | None
    dataset_id: int | None
    config: dict[str, Any]
    run_dir: str
    step: int
    total_steps: int
    checkpoint_step: int | None
    last_metrics: dict[str, Any] | None


class MetricPointPublic(ORM):
    step: int
    epoch: float | None
    loss: float | None
    lr: float | None
    values: dict[str, Any]


class EvaluationCreate(_In):
    run_id: Id | None = Field(None, description="evaluate this run's final model (or latest checkpoint)")
    dataset_id: Id | None = Field(None, description="evaluate on this stored dataset (else config.dataset)")
    shots_dataset_id: Id | None = Field(
        None, description="take k-shot demonstrations from this stored dataset"
    )
    config: Config = Field(
        default_factory=dict,
        description="EvalConfig fields: model (unless run_id), dataset, split, shots, seeds, limit, "
        "max_new_tokens, batch_size, ...",
    )


class EvaluationPublic(JobPublic):
    run_id: int | None
    dataset_id: int | None
    config: dict[str, Any]
    output_dir: str
    rows: list[dict[str, Any]] | None
    summary: list[dict[str, Any]] | None


class GenerationPublic(ORM):
    id: int
    evaluation_id: int
    example_id: str
    shots: int
    seed: int
    question: str
    gold: str
    shot_ids: list[Any]
    prompt: str
    generation: str
    extracted: str | None
    correct: bool


class SweepCreate(_In):
    name: Name | None = Field(None, description=f"unique ({NAME_RULE}); default: from the config")
    dataset_id: Id | None = Field(
        None, description="train every run on this stored dataset (sets train.dataset)"
    )
    eval_dataset_ids: list[Id] | None = Field(None, description="evaluate every run on these stored datasets")
    config: Config = Field(
        default_factory=dict,
        description="SweepConfig fields: train (shared TrainConfig fields), eval (shared EvalConfig fields), "
        "grid (TrainConfig field -> list of values), eval_datasets. Stored datasets may be named `db:<id>`.",
    )


class SweepPublic(JobPublic):
    name: str
    config: dict[str, Any]
    table_rows: list[dict[str, Any]] | None
    outputs: dict[str, Any] | None


class SweepTable(BaseModel):
    sweep_id: int
    status: str
    columns: list[str]
    rows: list[dict[str, Any]]


class CompareEntry(BaseModel):
    evaluation_id: int
    run_id: int | None
    run_name: str | None
    generation: str | None = Field(description="null when this evaluation has no chain for the question")
    extracted: str | None
    correct: bool | None


class CompareRow(BaseModel):
    example_id: str
    question: str
    gold: str
    shots: int
    seed: int
    entries: list[CompareEntry]
    agree: bool = Field(description="every evaluation gave the same extracted answer and correctness")


class ArtifactPublic(ORM):
    id: int
    path: str = Field(description="relative to the artifact directory")
    kind: str
    size_bytes: int
    run_id: int | None
    evaluation_id: int | None
    sweep_id: int | None
    created_at: datetime


def _followed() -> Any:
    """The `followed` field of every live read: what the page's sidebar asked for, so it needs no read itself."""
    return Field(
        default_factory=list,
        description="the sweeps asked for with `sweep=`, each with its `runs`, as `GET /status` reports them",
    )


class RunLive(BaseModel):
    """Everything the live panel of one run shows, in one read per tick (`GET /runs/{id}/live`)."""

    run: RunPublic
    metrics: Page[MetricPointPublic] = Field(
        description="metric points after `metrics_after` in step order; `next_cursor` (a step): more remain, "
        "ask again with it as `metrics_after`"
    )
    evaluations: list[EvaluationPublic] = Field(description="the run's evaluations, newest first (bounded)")
    sweep: dict[str, Any] | None = Field(
        description="the run's sweep as `GET /status` reports a job (status, cancel_requested, progress)"
    )
    followed: list[dict[str, Any]] = _followed()


class AnnotationLive(BaseModel):
    """What the live panel of one annotation job shows, in one read per tick (`GET /annotations/{id}/live`)."""

    job: AnnotationPublic
    followed: list[dict[str, Any]] = _followed()


class SweepLive(BaseModel):
    """Everything the live panel of one sweep shows, in one read per tick (`GET /sweeps/{id}/live`)."""

    sweep: SweepPublic
    table: SweepTable
    runs: list[dict[str, Any]] = Field(
        description="its runs in launch order as `GET /status` reports a job (name, status, step, progress)"
    )
    followed: list[dict[str, Any]] = _followed()
