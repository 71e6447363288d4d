from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from aicd.config import format_validation_error
from backend.api.deps import IdPath, IdQuery, PageDep, SessionDep
from backend.api.errors import ApiError, get_or_404
from backend.models import AnnotationJob, Dataset
from backend.schemas.common import Page
from backend.schemas.jobs import AnnotationCreate, AnnotationPublic
from backend.schemas.teacher import BASE_URL_MAX
from backend.services import lifecycle, teacher_keys
from backend.services.pagination import keyset_page

router = APIRouter(prefix="/annotations", tags=["annotations"])


def _public_page(session: Session, jobs: list[AnnotationJob]) -> list[AnnotationPublic]:
    """Jobs as shown; `has_api_key`: the endpoint the job uses still has a stored key (it may be deleted)."""
    with_key = teacher_keys.stored(session, (j.teacher_key_url for j in jobs if j.teacher_key_url))
    return [
        AnnotationPublic(
            **{k: getattr(job, k) for k in AnnotationPublic.model_fields if k != "has_api_key"},
            has_api_key=job.teacher_key_url in with_key,
        )
        for job in jobs
    ]


def _public(session: Session, job: AnnotationJob) -> AnnotationPublic:
    return _public_page(session, [job])[0]


def _validated(config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Validate with the core's AnnotateConfig; split off the API key so it is never echoed or logged."""
    from aicd.annotate.config import AnnotateConfig

    try:
        cfg = AnnotateConfig.model_validate(config)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(["config", *(str(p) for p in e["loc"])]),
                "message": e["msg"].removeprefix("Value error, "),
            }
            for e in exc.errors()
        ]
        raise ApiError(
            422, f"config: {format_validation_error(exc)}", field=errors[0]["field"], errors=errors
        ) from None
    key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
    return cfg.model_dump(mode="json", exclude={"api_key"}), key


@router.post(
    "",
    status_code=202,
    response_model=AnnotationPublic,
    summary="Start an annotation job: teacher (or gold/self) rationales for a stored dataset",
)
def create_annotation(body: AnnotationCreate, session: SessionDep) -> AnnotationPublic:
    if session.get(Dataset, body.dataset_id) is None:
        raise ApiError(404, f"dataset {body.dataset_id} not found", field="dataset_id")
    config, key = _validated(body.config)
    if len(teacher_keys.endpoint(config.get("base_url"))) > BASE_URL_MAX:
        raise ApiError(
            422, f"config.base_url must be at most {BASE_URL_MAX} characters", field="config.base_url"
        )
    key_url = None
    if config["source"] == "teacher":  # a key sent once is kept for the endpoint; later jobs may omit it
        url = teacher_keys.endpoint(config.get("base_url"))
        if key is not None:
            teacher_keys.remember(session, url, key)
        if key is not None or teacher_keys.stored(session, [url]):
            key_url = url  # the job refers to the endpoint's key, never holds a copy
    job = AnnotationJob(dataset_id=body.dataset_id, config=config, teacher_key_url=key_url)
    session.add(job)
    session.flush()
    lifecycle.enqueue(session, job)
    return _public(session, job)


@router.get("", response_model=Page[AnnotationPublic], summary="List annotation jobs (newest first)")
def list_annotations(
    session: SessionDep, page: PageDep, dataset_id: IdQuery = None
) -> Page[AnnotationPublic]:
    stmt = select(AnnotationJob)
    if dataset_id is not None:
        stmt = stmt.where(AnnotationJob.dataset_id == dataset_id)
    items, nxt = keyset_page(session, stmt, AnnotationJob.id, page.cursor, page.limit, desc=True)
    return Page[AnnotationPublic](items=_public_page(session, items), next_cursor=nxt, limit=page.limit)


def _get(session: SessionDep, job_id: int) -> AnnotationJob:
    job = get_or_404(session, AnnotationJob, job_id, "annotation")
    return job


@router.get("/{job_id}", response_model=AnnotationPublic)
def get_annotation(job_id: IdPath, session: SessionDep) -> AnnotationPublic:
    return _public(session, _get(session, job_id))


@router.post("/{job_id}/cancel", response_model=AnnotationPublic)
def cancel_annotation(job_id: IdPath, session: SessionDep) -> AnnotationPublic:
    job = _get(session, job_id)
    lifecycle.request_cancel(session, job)
    return _public(session, job)


@router.post(
    "/{job_id}/resume",
    status_code=202,
    response_model=AnnotationPublic,
    summary="Resume a failed/cancelled/lost job; rationales already stored are not asked for again",
)
def resume_annotation(job_id: IdPath, session: SessionDep) -> AnnotationPublic:
    job = _get(session, job_id)
    lifecycle.prepare_resume(session, job)
    lifecycle.enqueue(session, job)
    return _public(session, job)
