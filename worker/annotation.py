"""Annotation job: `aicd.annotate.annotate` with a DB-backed sink, then store the kept rationales.

Raw samples go to `annotation_records` as they arrive (so a resumed job asks only for what is missing); the
post-processed rationales (filtered, endings normalised) are upserted into `rationales` keyed by
writer|prompt_hash|sample_index, so re-running never duplicates them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from aicd.errors import AICDError
from backend.core.secrets import SecretKeyError
from backend.db import session_scope
from backend.models import AnnotationJob, AnnotationRecordRow, JobStatus, Rationale
from backend.models import Example as ExampleRow
from backend.services import teacher_keys
from worker import store
from worker.context import JobContext


class DBSink:
    """`RationaleSink` over the annotation_records table of one dataset."""

    def __init__(self, dataset_id: int, job_id: int):
        self.dataset_id = dataset_id
        self.job_id = job_id

    def existing_records(self) -> list[Any]:
        from aicd.annotate import AnnotationRecord

        with session_scope() as s:
            rows = s.scalars(
                select(AnnotationRecordRow.record).where(
                    AnnotationRecordRow.dataset_id == self.dataset_id, AnnotationRecordRow.status == "ok"
                )
            )
            return [AnnotationRecord.model_validate(r) for r in rows]

    def existing_keys(self) -> set[tuple[str, int, str, str]]:
        return {r.key for r in self.existing_records()}

    def _row(self, record: Any) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "annotation_job_id": self.job_id,
            "question_id": record.question_id,
            "sample_index": record.sample_index,
            "writer": record.teacher,
            "prompt_hash": record.prompt_hash,
            "status": record.status,
            "record": record.model_dump(mode="json"),
        }

    def write(self, record: Any) -> None:
        with session_scope() as s:  # an ok sample replaces an earlier failure of the same key
            store.upsert(
                s,
                AnnotationRecordRow,
                [self._row(record)],
                list(KEY),
                ["status", "record", "annotation_job_id"],
            )

    def write_failure(self, record: Any) -> None:
        """A repeated failure replaces the earlier one (its error and attempts), but never an ok sample."""
        with session_scope() as s:
            insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
            stmt = insert(AnnotationRecordRow).values([self._row(record)])
            stmt = stmt.on_conflict_do_update(
                index_elements=list(KEY),
                set_={c: stmt.excluded[c] for c in ("status", "record", "annotation_job_id")},
                where=AnnotationRecordRow.status != "ok",
            )
            s.execute(stmt)


KEY = ("dataset_id", "question_id", "sample_index", "writer", "prompt_hash")


def _store_rationales(dataset_id: int, job_id: int, examples: list[Any]) -> int:
    with session_scope() as s:
        ids = dict(
            s.execute(
                select(ExampleRow.ext_id, ExampleRow.id).where(ExampleRow.dataset_id == dataset_id)
            ).all()
        )
        rows = []
        for ex in examples:
            for r in ex.rationales:
                key = f"{r.model}|{r.meta.get('prompt_hash')}|{r.meta.get('sample_index')}"
                rows.append(
                    {
                        "example_id": ids[ex.id],
                        "annotation_job_id": job_id,
                        "key": key[:255],
                        "text": r.text,
                        "source": r.source,
                        "model": r.model,
                        "meta": r.meta,
                    }
                )
        for start in range(0, len(rows), 500):
            store.upsert(
                s,
                Rationale,
                rows[start : start + 500],
                ["example_id", "key"],
                ["text", "annotation_job_id", "meta"],
            )
    return len(rows)


def _teacher_key(job: AnnotationJob) -> str | None:
    """The key stored for the job's endpoint now (deleting it stops every job that used it; one stored after
    the job started is used on resume), or None (the teacher client then falls back to $OPENAI_API_KEY)."""
    if job.config.get("source", "teacher") != "teacher":
        return None
    url = job.teacher_key_url or teacher_keys.endpoint(job.config.get("base_url"))
    try:
        with session_scope() as s:
            key = teacher_keys.lookup(s, url)
    except SecretKeyError as exc:
        raise AICDError(str(exc)) from None
    if key is None and job.teacher_key_url is not None:
        raise AICDError(
            f"the API key stored for {job.teacher_key_url} was deleted; store it again "
            "(PUT /api/v1/teacher-keys) and resume this job"
        )
    return key


def annotate(ctx: JobContext) -> None:
    from aicd.annotate import AnnotateConfig
    from aicd.annotate import annotate as run_annotate

    job: AnnotationJob = ctx.load()
    config = AnnotateConfig.model_validate({**job.config, "api_key": _teacher_key(job)})
    ctx.phase("loading data")
    with session_scope() as s:
        examples = store.load_examples(s, job.dataset_id)
        if config.source != "gold":  # stored rationales stay in the DB; the teacher only sees questions
            examples = [ex.model_copy(update={"rationales": []}) for ex in examples]
    ctx.update(progress_total=len(examples) * config.k)
    report = run_annotate(
        config,
        examples,
        DBSink(job.dataset_id, job.id),
        should_stop=ctx.should_stop,
        on_progress=lambda done, total: ctx.update(progress_done=done, progress_total=total),
        hook=ctx,  # the `annotation` phase: stall watchdog, cancel/shutdown within seconds
    )
    ctx.phase("saving rationales")
    stored = _store_rationales(job.dataset_id, job.id, report.examples)
    summary = {**report.model_dump(mode="json"), "rationales_stored": stored}
    if report.stopped:
        ctx.finish(ctx.stopped_status(), ctx.stopped_message(), report=summary)
    elif report.failed:
        ctx.finish(JobStatus.failed, f"{report.failed} samples failed (resume to retry them)", report=summary)
    else:
        ctx.finish(JobStatus.succeeded, report=summary)
