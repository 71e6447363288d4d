"""(filter, id) indexes for the filtered job lists

`GET /runs?status=`, `?sweep_id=`, `GET /evaluations?status=`, `?run_id=` and `GET /annotations?dataset_id=`
page newest first by id: with an index on the filter column alone PostgreSQL fetched and sorted every matching
row per page (cost growing with the table); with (filter, id) a page is one backward index range scan. The
single-column indexes on the foreign keys are replaced (the composite serves their lookups too).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 19:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = [
    ("ix_runs_status_id", "runs", ["status", "id"]),
    ("ix_runs_sweep_id_id", "runs", ["sweep_id", "id"]),
    ("ix_evaluations_status_id", "evaluations", ["status", "id"]),
    ("ix_evaluations_run_id_id", "evaluations", ["run_id", "id"]),
    ("ix_annotation_jobs_dataset_id_id", "annotation_jobs", ["dataset_id", "id"]),
]
REPLACED = [
    ("ix_runs_sweep_id", "runs", ["sweep_id"]),
    ("ix_evaluations_run_id", "evaluations", ["run_id"]),
    ("ix_annotation_jobs_dataset_id", "annotation_jobs", ["dataset_id"]),
]


def upgrade() -> None:
    for name, table, columns in NEW:
        op.create_index(name, table, columns, unique=False)
    for name, table, _ in REPLACED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns in REPLACED:
        op.create_index(name, table, columns, unique=False)
    for name, table, _ in NEW:
        op.drop_index(name, table_name=table)
