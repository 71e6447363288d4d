"""64-bit ids: every id and every column referring to one becomes BIGINT on PostgreSQL

The API promises ids up to 2^63-1; PostgreSQL's SERIAL ids were 32-bit (and so were their sequences).
SQLite needs nothing: an INTEGER PRIMARY KEY is already a 64-bit rowid.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> its id and the columns that refer to an id (as in backend.models at this revision)
ID_COLUMNS: dict[str, tuple[str, ...]] = {
    "datasets": ("id",),
    "sweeps": ("id",),
    "teacher_keys": ("id",),
    "annotation_jobs": ("id", "dataset_id"),
    "examples": ("id", "dataset_id"),
    "runs": ("id", "sweep_id", "dataset_id"),
    "annotation_records": ("id", "dataset_id", "annotation_job_id"),
    "evaluations": ("id", "run_id", "dataset_id"),
    "metric_points": ("id", "run_id"),
    "rationales": ("id", "example_id", "annotation_job_id"),
    "generations": ("id", "evaluation_id"),
    "artifacts": ("id", "run_id", "evaluation_id", "sweep_id"),
}


def _retype(new: sa.types.TypeEngine, old: sa.types.TypeEngine, seq_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in ID_COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=new, existing_type=old)
        # the SERIAL's sequence has its own type (and a max value of 2^31-1 with it)
        op.execute(f"ALTER SEQUENCE IF EXISTS {table}_id_seq AS {seq_type}")


def upgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer(), "bigint")


def downgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger(), "integer")
