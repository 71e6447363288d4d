"""Datasets, their examples and the rationales written for them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.models.base import Base, BigId, utcnow


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(500), default="")
    answer_kind: Mapped[str | None] = mapped_column(String(16))
    n_examples: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    examples: Mapped[list[Example]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True
    )


class Example(Base):
    __tablename__ = "examples"
    __table_args__ = (
        UniqueConstraint("dataset_id", "ext_id"),
        Index("ix_examples_dataset_id_id", "dataset_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(BigId, ForeignKey("datasets.id", ondelete="CASCADE"))
    ext_id: Mapped[str] = mapped_column(String(200), doc="the example's own id from the JSONL")
    position: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)

    dataset: Mapped[Dataset] = relationship(back_populates="examples")
    rationales: Mapped[list[Rationale]] = relationship(
        back_populates="example", cascade="all, delete-orphan", passive_deletes=True, order_by="Rationale.id"
    )


class Rationale(Base):
    __tablename__ = "rationales"
    __table_args__ = (UniqueConstraint("example_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    example_id: Mapped[int] = mapped_column(BigId, ForeignKey("examples.id", ondelete="CASCADE"), index=True)
    annotation_job_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("annotation_jobs.id", ondelete="SET NULL"), index=True
    )
    key: Mapped[str] = mapped_column(String(255), doc="idempotency key: a re-run never stores it twice")
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="teacher")
    model: Mapped[str | None] = mapped_column(String(255))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)

    example: Mapped[Example] = relationship(back_populates="rationales")


class AnnotationRecordRow(Base):
    """A raw teacher/self/gold sample as it arrived (before filtering), keyed like `aicd.annotate`'s RecordKey
    so a resumed or repeated annotation never asks for the same sample twice."""

    __tablename__ = "annotation_records"
    __table_args__ = (UniqueConstraint("dataset_id", "question_id", "sample_index", "writer", "prompt_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(BigId, ForeignKey("datasets.id", ondelete="CASCADE"))
    annotation_job_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("annotation_jobs.id", ondelete="SET NULL"), index=True
    )
    question_id: Mapped[str] = mapped_column(String(200))
    sample_index: Mapped[int] = mapped_column(Integer)
    writer: Mapped[str] = mapped_column(String(255))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    record: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
