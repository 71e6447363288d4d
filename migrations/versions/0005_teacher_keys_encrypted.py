"""teacher keys encrypted at rest; annotation jobs refer to a key by endpoint instead of holding a copy

Existing keys are encrypted with the server secret (backend.core.secrets: AICD_SECRET_KEY, or the generated
key file). A key held by an annotation job moves into teacher_keys for the job's endpoint (unless that
endpoint already has one; the newest job's key wins), and the job refers to it by `teacher_key_url`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 18:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPENAI_BASE_URL = "https://api.openai.com/v1"


# the columns of both versions (this migration reads the one and writes the other)
KEYS = sa.table(
    "teacher_keys",
    sa.column("id", sa.BigInteger),
    sa.column("base_url", sa.String),
    sa.column("api_key", sa.Text),
    sa.column("api_key_encrypted", sa.Text),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
JOBS = sa.table(
    "annotation_jobs",
    sa.column("id", sa.BigInteger),
    sa.column("config", sa.JSON),
    sa.column("api_key", sa.Text),
    sa.column("teacher_key_url", sa.String),
)


def _endpoint(base_url: str | None) -> str:
    return (base_url or OPENAI_BASE_URL).strip().rstrip("/")


def upgrade() -> None:
    from backend.core.secrets import encrypt

    conn = op.get_bind()
    with op.batch_alter_table("teacher_keys") as batch:
        batch.add_column(sa.Column("api_key_encrypted", sa.Text(), nullable=True))
    with op.batch_alter_table("annotation_jobs") as batch:
        batch.add_column(sa.Column("teacher_key_url", sa.String(length=500), nullable=True))

    stored: set[str] = set()
    for row in conn.execute(sa.select(KEYS.c.id, KEYS.c.base_url, KEYS.c.api_key)):
        conn.execute(KEYS.update().where(KEYS.c.id == row.id).values(api_key_encrypted=encrypt(row.api_key)))
        stored.add(row.base_url)
    newest_first = sa.select(JOBS.c.id, JOBS.c.config, JOBS.c.api_key).order_by(JOBS.c.id.desc())
    for job in conn.execute(newest_first.where(JOBS.c.api_key.is_not(None))).all():
        url = _endpoint((job.config or {}).get("base_url"))
        if url not in stored:
            now = sa.func.now() if conn.dialect.name == "postgresql" else sa.func.current_timestamp()
            conn.execute(
                KEYS.insert().values(
                    base_url=url,
                    api_key="",
                    api_key_encrypted=encrypt(job.api_key),
                    created_at=now,
                    updated_at=now,
                )
            )
            stored.add(url)
        conn.execute(JOBS.update().where(JOBS.c.id == job.id).values(teacher_key_url=url))

    with op.batch_alter_table("teacher_keys") as batch:
        batch.alter_column("api_key_encrypted", existing_type=sa.Text(), nullable=False)
        batch.drop_column("api_key")
    with op.batch_alter_table("annotation_jobs") as batch:
        batch.drop_column("api_key")


def downgrade() -> None:
    from backend.core.secrets import decrypt

    conn = op.get_bind()
    with op.batch_alter_table("teacher_keys") as batch:
        batch.add_column(sa.Column("api_key", sa.Text(), nullable=True))
    with op.batch_alter_table("annotation_jobs") as batch:
        batch.add_column(sa.Column("api_key", sa.Text(), nullable=True))
    for row in conn.execute(sa.select(KEYS.c.id, KEYS.c.base_url, KEYS.c.api_key_encrypted)).all():
        plain = decrypt(row.api_key_encrypted)
        conn.execute(KEYS.update().where(KEYS.c.id == row.id).values(api_key=plain))
        conn.execute(JOBS.update().where(JOBS.c.teacher_key_url == row.base_url).values(api_key=plain))
    with op.batch_alter_table("teacher_keys") as batch:
        batch.alter_column("api_key", existing_type=sa.Text(), nullable=False)
        batch.drop_column("api_key_encrypted")
    with op.batch_alter_table("annotation_jobs") as batch:
        batch.drop_column("teacher_key_url")
