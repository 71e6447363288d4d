"""Datasets from an uploaded JSONL or a built-in loader, stored all-or-nothing in one transaction."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from aicd.data.jsonl import describe_record_error, iter_json_objects
from aicd.data.record import Example
from aicd.errors import AICDError, DataError
from backend.api.errors import ApiError
from backend.models import Dataset, Rationale
from backend.models import Example as ExampleRow
from backend.schemas.common import nul_path

EXT_ID_MAX = ExampleRow.__table__.c.ext_id.type.length  # 200
MODEL_MAX = Rationale.__table__.c.model.type.length  # 255
MAX_FILENAME = 200


def safe_filename(filename: str | None) -> str:
    """The upload's file name reduced to harmless characters (it is echoed in messages and stored)."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(filename or "").name[-MAX_FILENAME:])
    return name if name.strip(".") else "upload.jsonl"  # never "", "." or ".." (it becomes a file name)


def _storable(ex: Example) -> str | None:
    """Why the database could not store this record (NUL characters, over-long keys), or None."""
    if (where := nul_path(ex.model_dump())) is not None:
        return f"field '{where}' contains a NUL character, which cannot be stored"
    if len(ex.id) > EXT_ID_MAX:
        return f"field 'id' is longer than {EXT_ID_MAX} characters ({len(ex.id)})"
    for i, r in enumerate(ex.rationales):
        if r.model is not None and len(r.model) > MODEL_MAX:
            return f"field 'rationales.{i}.model' is longer than {MODEL_MAX} characters ({len(r.model)})"
    return None


def parse_jsonl(filename: str, data: bytes) -> list[Example]:
    """Validate every line like the core's JSONL reader, and that the database can store it; errors name the
    upload, line and field."""
    safe = safe_filename(filename)
    examples: list[Example] = []
    seen: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="aicd-upload-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(data)
        try:
            for lineno, obj in iter_json_objects(path):
                try:
                    ex = Example.model_validate(obj)
                except ValidationError as exc:
                    raise DataError(f"{safe}:{lineno}: {describe_record_error(exc)}") from None
                if (problem := _storable(ex)) is not None:
                    raise DataError(f"{safe}:{lineno}: {problem}")
                if ex.id in seen:
                    raise DataError(f"{safe}: duplicate id '{ex.id}' (lines {seen[ex.id]} and {lineno})")
                seen[ex.id] = lineno
                examples.append(ex)
        except DataError as exc:
            raise DataError(str(exc).replace(str(path), safe)) from None
    if not examples:
        raise DataError(f"{safe}: no records (expected one JSON object per line)")
    return examples


def guess_answer_kind(examples: list[Example]) -> str:
    return "yesno" if all(ex.answer.lower() in ("yes", "no") for ex in examples) else "number"


def load_builtin(source: str, split: str, limit: int | None, seed: int) -> tuple[list[Example], str]:
    from aicd.data import loaders

    if source not in loaders.DATASETS:
        choices = ", ".join(sorted(loaders.DATASETS)) or "none installed"
        raise ApiError(422, f"unknown built-in dataset '{source}' (choose from {choices})", field="source")
    try:
        examples = loaders.load_examples(source, split, limit=limit, seed=seed)
    except AICDError:
        raise
    except (ValueError, KeyError, OSError) as exc:
        raise ApiError(422, f"could not load {source}/{split}: {exc}", field="split") from None
    if not examples:
        raise ApiError(422, f"{source}/{split} has no examples", field="split")
    return examples, loaders.DATASETS[source].answer_kind


def create_dataset(
    session: Session,
    *,
    name: str,
    description: str,
    source: str,
    examples: list[Example],
    answer_kind: str | None = None,
) -> Dataset:
    """Insert the dataset, its examples and their rationales; nothing is stored unless all of it is."""
    if session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
        raise ApiError(409, f"a dataset named '{name}' already exists", field="name")
    try:
        dataset = Dataset(
            name=name,
            description=description,
            source=source,
            n_examples=len(examples),
            answer_kind=answer_kind or guess_answer_kind(examples),
        )
        session.add(dataset)
        session.flush()
        ids = list(
            session.scalars(
                insert(ExampleRow).returning(ExampleRow.id, sort_by_parameter_order=True),
                [
                    {
                        "dataset_id": dataset.id,
                        "ext_id": ex.id,
                        "position": i,
                        "question": ex.question,
                        "answer": ex.answer,
                    }
                    for i, ex in enumerate(examples)
                ],
            )
        )
        rationale_rows = [
            {
                "example_id": ex_id,
                "key": f"import:{j}",
                "text": r.text,
                "source": r.source,
                "model": r.model,
                "meta": r.meta,
            }
            for ex_id, ex in zip(ids, examples, strict=True)
            for j, r in enumerate(ex.rationales)
        ]
        if rationale_rows:
            session.execute(insert(Rationale), rationale_rows)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    session.refresh(dataset)
    return dataset
