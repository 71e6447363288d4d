"""The worker's DB sink for annotation records, against the real PostgreSQL of the backend tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from aicd.annotate import AnnotationRecord
from tests.backend.conftest import _apply_env, _restore_env


@pytest.fixture
def sink_ids(pg_url: str) -> Iterator[tuple[int, int]]:
    """(dataset_id, annotation_job_id) of a fresh dataset and job in the session's database."""
    old = _apply_env({"AICD_DATABASE_URL": pg_url})
    try:
        from backend.db import session_scope
        from backend.models import AnnotationJob, Dataset

        with session_scope() as s:
            dataset = Dataset(name=f"sink-{uuid.uuid4().hex[:8]}")
            s.add(dataset)
            s.flush()
            job = AnnotationJob(dataset_id=dataset.id, config={})
            s.add(job)
            s.flush()
            ids = (dataset.id, job.id)
        yield ids
    finally:
        _restore_env(old)


def _record(status: str, **kw) -> AnnotationRecord:
    return AnnotationRecord(
        question_id="q1", sample_index=0, teacher="t", prompt_hash="h", status=status, **kw
    )


def _rows(dataset_id: int) -> list[tuple[str, dict]]:
    from backend.db import session_scope
    from backend.models import AnnotationRecordRow

    with session_scope() as s:
        return [
            tuple(r)
            for r in s.execute(
                select(AnnotationRecordRow.status, AnnotationRecordRow.record).where(
                    AnnotationRecordRow.dataset_id == dataset_id
                )
            )
        ]


def test_a_repeated_failure_replaces_the_earlier_one_but_never_an_ok_sample(
    sink_ids: tuple[int, int],
) -> None:
    from worker.annotation import DBSink

    dataset_id, job_id = sink_ids
    sink = DBSink(dataset_id, job_id)
    sink.write_failure(_record("failed", error="HTTP 500: first", attempts=3))
    sink.write_failure(_record("failed", error="request timed out", attempts=7))
    [(status, record)] = _rows(dataset_id)
    assert status == "failed" and record["error"] == "request timed out" and record["attempts"] == 7

    sink.write(_record("ok", text="1 + 1 = 2. So, the answer is 2."))
    sink.write_failure(_record("failed", error="late failure of a concurrent job"))
    [(status, record)] = _rows(dataset_id)
    assert status == "ok" and record["text"] == "1 + 1 = 2. So, the answer is 2."
    assert [r.key for r in sink.existing_records()] == [("q1", 0, "t", "h")]
