"""Declarative base with a constraint naming convention (stable names for Alembic) and shared column types."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, MetaData, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""Type of every id and every column referring to one: BIGINT on PostgreSQL (ids up to 2^63-1, as the API
promises); on SQLite an INTEGER PRIMARY KEY is already 64-bit and must stay INTEGER to remain the rowid."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        datetime: DateTime(timezone=True),
        str: String(255),
    }


class JobStatus(StrEnum):
    """queued → running → succeeded | failed | cancelled; `lost` = the worker stopped sending heartbeats."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    lost = "lost"


ACTIVE = (JobStatus.queued.value, JobStatus.running.value)
RESUMABLE = (JobStatus.failed.value, JobStatus.cancelled.value, JobStatus.lost.value)


class JobMixin:
    """Status, progress and liveness shared by annotation jobs, runs, evaluations and sweeps."""

    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued.value, index=True)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    worker: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
