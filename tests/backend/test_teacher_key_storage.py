"""Teacher keys at rest (issue 11 #6): encrypted with the server secret, never copied into job rows, gone for
every job once deleted (a resumed annotation then fails saying so), and existing plain-text keys migrated."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, select, text

from aicd.annotate.config import AnnotateConfig
from backend.core import secrets
from backend.core.settings import Settings
from backend.db import session_scope
from backend.models import AnnotationJob, Dataset, TeacherKey
from backend.services import teacher_keys
from tests.backend.conftest import create_database, drop_database, run_alembic


def _dataset() -> int:
    with session_scope() as s:
        ds = Dataset(name=f"keys-{uuid.uuid4().hex[:8]}", source="test")
        s.add(ds)
        s.flush()
        return ds.id


@pytest.mark.usefixtures("client")
def test_keys_are_encrypted_at_rest_and_jobs_hold_no_copy() -> None:
    url, plain = f"http://127.0.0.1:9/{uuid.uuid4().hex[:6]}", "sk-at-rest-secret"
    with session_scope() as s:
        teacher_keys.remember(s, url, plain)
    with session_scope() as s:
        token = s.scalar(select(TeacherKey.api_key_encrypted).where(TeacherKey.base_url == url))
        raw = s.execute(text("SELECT * FROM teacher_keys WHERE base_url = :u"), {"u": url}).one()
        columns = {c["name"] for c in inspect(s.get_bind()).get_columns("annotation_jobs")}
    assert plain not in token and plain not in repr(tuple(raw))
    assert secrets.decrypt(token) == plain
    assert "api_key" not in columns and "teacher_key_url" in columns
    other = Settings(secret_key=Fernet.generate_key().decode())
    with pytest.raises(InvalidToken):
        secrets.cipher(other).decrypt(token.encode())  # another server secret cannot read it


@pytest.mark.usefixtures("client")
def test_a_resumed_annotation_whose_key_was_deleted_fails_saying_so(client: TestClient) -> None:
    from worker import handlers
    from worker.annotation import _teacher_key

    url = f"http://127.0.0.1:9/{uuid.uuid4().hex[:6]}"
    config = AnnotateConfig(base_url=url, teacher="t", k=1).model_dump(mode="json", exclude={"api_key"})
    with session_scope() as s:
        teacher_keys.remember(s, url, "sk-soon-deleted")
        job = AnnotationJob(
            dataset_id=_dataset(), config=config, teacher_key_url=url, status="queued", attempt=2
        )
        s.add(job)
        s.flush()
        job_id = job.id
    with session_scope() as s:
        assert _teacher_key(s.get(AnnotationJob, job_id)) == "sk-soon-deleted"  # what the worker sends
    assert client.get(f"/api/v1/annotations/{job_id}").json()["has_api_key"] is True
    assert client.delete("/api/v1/teacher-keys", params={"base_url": url}).status_code == 204
    assert client.get(f"/api/v1/annotations/{job_id}").json()["has_api_key"] is False
    handlers.run_task("aicd.annotate", job_id, 2)  # the resumed attempt, as a worker runs it
    body = client.get(f"/api/v1/annotations/{job_id}").json()
    assert body["status"] == "failed", body
    assert body["error"] == (
        f"the API key stored for {url} was deleted; store it again (PUT /api/v1/teacher-keys) and resume this job"
    )


def test_without_a_secret_a_key_file_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", secret_key=None)
    token = secrets.cipher(settings).encrypt(b"sk-x")
    path = tmp_path / "home" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()
    assert secrets.cipher(Settings(home=tmp_path / "home", secret_key=None)).decrypt(token) == b"sk-x"
    assert path.read_bytes() == key and list(path.parent.iterdir()) == [path]  # reused, no stray temp file
    with pytest.raises(ValueError, match="AICD_SECRET_KEY must be Fernet keys"):
        Settings(secret_key="not-a-fernet-key")


def test_migration_encrypts_existing_keys_and_moves_job_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = Fernet.generate_key().decode()
    monkeypatch.setenv("AICD_SECRET_KEY", secret)
    name, url = create_database("aicd_keys")
    engine = create_engine(url)
    try:
        run_alembic(url, "upgrade", "0004")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO teacher_keys (base_url, api_key, created_at, updated_at) "
                    "VALUES ('http://a/v1', 'sk-stored', now(), now())"
                )
            )
            ds = conn.execute(
                text(
                    "INSERT INTO datasets (name, description, source, n_examples, created_at) "
                    "VALUES ('d', '', 'x', 0, now()) RETURNING id"
                )
            ).scalar_one()
            for base, key in (("http://a/v1/", "sk-old-job"), ("http://b/v1", "sk-job-only"), (None, None)):
                cfg = '{"source": "teacher", "base_url": %s}' % ("null" if base is None else f'"{base}"')
                conn.execute(
                    text(
                        "INSERT INTO annotation_jobs (dataset_id, config, api_key, status, progress_done, "
                        "progress_total, cancel_requested, attempt, created_at) "
                        "VALUES (:d, CAST(:c AS JSONB), :k, 'failed', 0, 0, false, 1, now())"
                    ),
                    {"d": ds, "c": cfg, "k": key},
                )
        run_alembic(url, "upgrade", "head")
        cipher = Fernet(secret.encode())
        with engine.begin() as conn:
            keys = dict(conn.execute(text("SELECT base_url, api_key_encrypted FROM teacher_keys")).all())
            refs = [
                r[0] for r in conn.execute(text("SELECT teacher_key_url FROM annotation_jobs ORDER BY id"))
            ]
            job_columns = {c["name"] for c in inspect(conn).get_columns("annotation_jobs")}
            key_columns = {c["name"] for c in inspect(conn).get_columns("teacher_keys")}
        assert {u: cipher.decrypt(t.encode()).decode() for u, t in keys.items()} == {
            "http://a/v1": "sk-stored",  # the endpoint's own key wins over an older job's copy
            "http://b/v1": "sk-job-only",  # a key only a job held is kept, encrypted, for its endpoint
        }
        assert refs == ["http://a/v1", "http://b/v1", None]
        assert "api_key" not in job_columns and "api_key" not in key_columns
    finally:
        engine.dispose()
        drop_database(name)
