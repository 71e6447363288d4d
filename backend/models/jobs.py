"""Long-running jobs: annotation, training runs, evaluations, sweeps; their metric points and generations."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    cast,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, BigId, JobMixin, utcnow


class AnnotationJob(JobMixin, Base):
    __tablename__ = "annotation_jobs"
    # lists filter then page newest first by id: (filter, id) indexes keep every page an index range scan
    __table_args__ = (Index("ix_annotation_jobs_dataset_id_id", "dataset_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(BigId, ForeignKey("datasets.id", ondelete="CASCADE"))
    config: Mapped[dict[str, Any]] = mapped_column(doc="AnnotateConfig without the API key")
    teacher_key_url: Mapped[str | None] = mapped_column(
        String(500),
        doc="endpoint whose stored key (teacher_keys) the job uses; keys are never copied into jobs",
    )
    report: Mapped[dict[str, Any] | None]


class Sweep(JobMixin, Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]]
    table_rows: Mapped[list[Any] | None]
    outputs: Mapped[dict[str, Any] | None] = mapped_column(doc="paths of the results table and plots")


class Run(JobMixin, Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_status_id", "status", "id"),
        Index("ix_runs_sweep_id_id", "sweep_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    sweep_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("sweeps.id", ondelete="SET NULL"))
    dataset_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    config: Mapped[dict[str, Any]] = mapped_column(doc="the validated TrainConfig")
    run_dir: Mapped[str] = mapped_column(String(1000), doc="relative to the artifact directory")
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint_step: Mapped[int | None] = mapped_column(Integer)
    resume: Mapped[bool] = mapped_column(Boolean, default=False)
    last_metrics: Mapped[dict[str, Any] | None]


class MetricPoint(Base):
    __tablename__ = "metric_points"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Evaluation(JobMixin, Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        Index("ix_evaluations_status_id", "status", "id"),
        Index("ix_evaluations_run_id_id", "run_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("runs.id", ondelete="SET NULL"))
    dataset_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    config: Mapped[dict[str, Any]] = mapped_column(doc="the validated EvalConfig")
    output_dir: Mapped[str] = mapped_column(String(1000), doc="relative to the artifact directory")
    rows: Mapped[list[Any] | None] = mapped_column(doc="accuracy per (shots, seed)")
    summary: Mapped[list[Any] | None] = mapped_column(doc="mean/std accuracy per shots")


class Generation(Base):
    __tablename__ = "generations"
    __table_args__ = (
        UniqueConstraint("evaluation_id", "shots", "seed", "example_id"),
        Index("ix_generations_evaluation_id_id", "evaluation_id", "id"),
        Index("ix_generations_evaluation_id_shots_seed_id", "evaluation_id", "shots", "seed", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(BigId, ForeignKey("evaluations.id", ondelete="CASCADE"))
    example_id: Mapped[str] = mapped_column(String(200))
    shots: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    gold: Mapped[str] = mapped_column(Text)
    shot_ids: Mapped[list[Any]] = mapped_column(default=list)
    prompt: Mapped[str] = mapped_column(Text)
    generation: Mapped[str] = mapped_column(Text)
    extracted: Mapped[str | None] = mapped_column(Text)
    correct: Mapped[bool] = mapped_column(Boolean)


def json_as_text(columns: Iterable[Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    """`columns`, those named in `names` (JSON columns) read as their stored text: the lists serve that text as
    it is (`api.responses.page_response(..., raw=names)`)."""
    return tuple(cast(c, Text).label(c.name) if c.name in names else c for c in columns)


GENERATION_JSON_TEXT = ("shot_ids",)
GENERATION_COLUMNS = json_as_text(Generation.__table__.c, GENERATION_JSON_TEXT)
"""What a listed generation shows."""


class Artifact(Base):
    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), unique=True, doc="relative to the artifact directory")
    kind: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    evaluation_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("evaluations.id", ondelete="CASCADE"), index=True
    )
    sweep_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sweeps.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
