from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Response, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from aicd.data.record import RationaleSource
from aicd.errors import DataError
from backend.api.deps import IdPath, IdQuery, PageDep, SessionDep, SettingsDep
from backend.api.errors import ApiError, get_or_404
from backend.api.responses import page_response
from backend.models import Dataset, Example, Rationale
from backend.schemas.common import NAME_MAX, NAME_PATTERN, NAME_RULE, Description, Page
from backend.schemas.datasets import DatasetImport, DatasetPublic, DatasetRationalePublic, ExamplePublic
from backend.services import datasets as svc
from backend.services.pagination import keyset_page, keyset_rows

router = APIRouter(prefix="/datasets", tags=["datasets"])


def _read_limited(file: UploadFile, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := file.file.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"upload is larger than the limit of {limit} bytes", field="file")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    status_code=201,
    response_model=DatasetPublic,
    summary="Upload a JSONL dataset (one Example per line: id, question, answer, rationales)",
)
def upload_dataset(
    session: SessionDep,
    settings: SettingsDep,
    file: UploadFile,
    name: Annotated[str, Form(pattern=NAME_PATTERN, max_length=NAME_MAX, description=NAME_RULE)],
    description: Annotated[Description, Form()] = "",
) -> Dataset:
    # a plain `def`: FastAPI runs it in its thread pool, so parsing and inserting a large upload never blocks
    # the event loop (other requests, /health, keep being answered). The body size was capped by
    # backend.api.middleware before FastAPI spooled the form; this checks the file itself.
    data = _read_limited(file, settings.max_upload_bytes)
    filename = svc.safe_filename(file.filename)
    try:
        examples = svc.parse_jsonl(filename, data)
    except DataError as exc:
        raise ApiError(422, str(exc), field="file") from None
    return svc.create_dataset(
        session,
        name=name,
        description=description,
        source=f"upload:{filename}",
        examples=examples,
    )


@router.post(
    "/import",
    status_code=201,
    response_model=DatasetPublic,
    summary="Import a built-in dataset (gsm8k, svamp, multiarith, strategyqa, arith)",
)
def import_dataset(body: DatasetImport, session: SessionDep) -> Dataset:
    examples, kind = svc.load_builtin(body.source, body.split, body.limit, body.seed)
    return svc.create_dataset(
        session,
        name=body.name,
        description=body.description,
        source=f"builtin:{body.source}/{body.split}",
        examples=examples,
        answer_kind=kind,
    )


@router.get("", response_model=Page[DatasetPublic], summary="List datasets (newest first)")
def list_datasets(session: SessionDep, page: PageDep) -> Page[DatasetPublic]:
    items, nxt = keyset_page(session, select(Dataset), Dataset.id, page.cursor, page.limit, desc=True)
    return Page[DatasetPublic](items=items, next_cursor=nxt, limit=page.limit)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: IdPath, session: SessionDep) -> Dataset:
    dataset = get_or_404(session, Dataset, dataset_id, "dataset")
    return dataset


@router.get(
    "/{dataset_id}/examples",
    response_model=Page[ExamplePublic],
    summary="Page through a dataset's examples with their rationales",
)
def list_examples(dataset_id: IdPath, session: SessionDep, page: PageDep) -> Page[ExamplePublic]:
    get_dataset(dataset_id, session)
    stmt = select(Example).where(Example.dataset_id == dataset_id).options(selectinload(Example.rationales))
    items, nxt = keyset_page(session, stmt, Example.id, page.cursor, page.limit)
    return Page[ExamplePublic](items=items, next_cursor=nxt, limit=page.limit)


RATIONALE_COLUMNS = (
    Rationale.id,
    Rationale.example_id,
    Example.ext_id,
    Rationale.text,
    Rationale.source,
    Rationale.model,
    Rationale.meta,
    Rationale.annotation_job_id,
)


@router.get(
    "/{dataset_id}/rationales",
    response_model=Page[DatasetRationalePublic],
    summary="Page through a dataset's rationales; filters: `source`, `example_id` (an example's `id`)",
)
def list_rationales(
    dataset_id: IdPath,
    session: SessionDep,
    page: PageDep,
    source: Annotated[RationaleSource | None, Query(description="teacher | gold | self")] = None,
    example_id: IdQuery = None,
) -> Response:
    get_dataset(dataset_id, session)
    stmt = select(*RATIONALE_COLUMNS).join(Example, Rationale.example_id == Example.id)
    stmt = stmt.where(Example.dataset_id == dataset_id)
    if source is not None:
        stmt = stmt.where(Rationale.source == source)
    if example_id is not None:
        stmt = stmt.where(Rationale.example_id == example_id)
    items, nxt = keyset_rows(session, stmt, Rationale.id, page.cursor, page.limit)
    return page_response(DatasetRationalePublic, items, nxt, page.limit)


@router.delete("/{dataset_id}", status_code=204, summary="Delete a dataset, its examples and rationales")
def delete_dataset(dataset_id: IdPath, session: SessionDep) -> None:
    dataset = get_dataset(dataset_id, session)
    session.delete(dataset)
    session.commit()
