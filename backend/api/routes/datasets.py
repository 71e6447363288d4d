from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from aicd.errors import DataError
from backend.api.deps import PageDep, SessionDep, SettingsDep
from backend.api.errors import ApiError, get_or_404
from backend.models import Dataset, Example
from backend.schemas.common import Page
from backend.schemas.datasets import NAME_PATTERN, DatasetImport, DatasetPublic, ExamplePublic
from backend.services import datasets as svc
from backend.services.pagination import keyset_page

router = APIRouter(prefix="/datasets", tags=["datasets"])


async def _read_limited(file: UploadFile, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await file.read(1024 * 1024):
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
async def upload_dataset(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    file: UploadFile,
    name: Annotated[str, Form(pattern=NAME_PATTERN)],
    description: Annotated[str, Form()] = "",
) -> Dataset:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + 64 * 1024:
        raise ApiError(
            413, f"upload is larger than the limit of {settings.max_upload_bytes} bytes", field="file"
        )
    data = await _read_limited(file, settings.max_upload_bytes)
    try:
        examples = svc.parse_jsonl(file.filename or "upload.jsonl", data)
    except DataError as exc:
        raise ApiError(422, str(exc), field="file") from None
    return svc.create_dataset(
        session,
        name=name,
        description=description,
        source=f"upload:{file.filename or 'upload.jsonl'}",
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
def get_dataset(dataset_id: int, session: SessionDep) -> Dataset:
    dataset = get_or_404(session, Dataset, dataset_id, "dataset")
    return dataset


@router.get(
    "/{dataset_id}/examples",
    response_model=Page[ExamplePublic],
    summary="Page through a dataset's examples with their rationales",
)
def list_examples(dataset_id: int, session: SessionDep, page: PageDep) -> Page[ExamplePublic]:
    get_dataset(dataset_id, session)
    stmt = select(Example).where(Example.dataset_id == dataset_id).options(selectinload(Example.rationales))
    items, nxt = keyset_page(session, stmt, Example.id, page.cursor, page.limit)
    return Page[ExamplePublic](items=items, next_cursor=nxt, limit=page.limit)


@router.delete("/{dataset_id}", status_code=204, summary="Delete a dataset, its examples and rationales")
def delete_dataset(dataset_id: int, session: SessionDep) -> None:
    dataset = get_dataset(dataset_id, session)
    session.delete(dataset)
    session.commit()
