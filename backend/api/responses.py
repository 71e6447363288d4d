"""Fast JSON for the hot list endpoints: rows are validated and serialised by pydantic-core in one pass and
returned as a ready Response (FastAPI would otherwise re-validate and re-encode them).

JSON columns can be read as their stored text (`CAST(... AS TEXT)`) and named in `raw`: the page then carries
that text as it is, neither parsed nor re-encoded. Parsing and re-encoding the 100 configs and metrics of a page
of runs cost more CPU than everything else the route does (bench/results/api-cpu.md)."""

from __future__ import annotations

import re
import types
from datetime import datetime
from functools import lru_cache
from typing import Any, Union, get_args, get_origin

from fastapi import Response
from pydantic import BaseModel, TypeAdapter, create_model

from backend.schemas.common import Page

_SCALARS = (int, float, str, bool, datetime, type(None))


@lru_cache
def _adapter(schema: type[BaseModel], raw: tuple[str, ...]) -> TypeAdapter[Any]:
    """Page[schema], with each `raw` field replaced by an int: the index of its text in the page's slots."""
    if not raw:
        return TypeAdapter(Page[schema])  # type: ignore[valid-type]
    fields: dict[str, Any] = {}
    for name, info in schema.model_fields.items():
        if name in raw:
            fields[name] = (int, ...)
        elif not _is_scalar(info.annotation):
            raise TypeError(
                f"{schema.__name__}.{name}: a page with raw fields holds only scalars besides them"
            )
        else:
            fields[name] = (info.annotation, info)
    slotted = create_model(f"{schema.__name__}Slotted", **fields)
    return TypeAdapter(Page[slotted])  # type: ignore[valid-type]


def _is_scalar(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return all(_is_scalar(a) for a in get_args(annotation))
    return annotation in _SCALARS


@lru_cache
def _slot_pattern(raw: tuple[str, ...]) -> re.Pattern[bytes]:
    """`"field":<slot>` for a raw field. pydantic-core writes every `"` inside a string as `\\"`, and the other
    fields are scalars (checked in `_adapter`), so this matches only the raw fields' own keys."""
    names = b"|".join(re.escape(n.encode()) for n in raw)
    return re.compile(rb'"(' + names + rb')":(\d+)')


def page_response(
    schema: type[BaseModel],
    items: list[dict[str, Any]],
    next_cursor: str | None,
    limit: int,
    *,
    raw: tuple[str, ...] = (),
) -> Response:
    """One page of `schema` items (the route's response_model item; tests validate the bytes against it).
    `raw` fields hold stored JSON text (None for SQL NULL): JSONB's text form on PostgreSQL, or the text the
    strict serialiser of `backend.db` wrote on SQLite, so always valid JSON."""
    slots: list[bytes] = []
    if raw:
        items = [_slotted(item, raw, slots) for item in items]
    adapter = _adapter(schema, raw)
    body = adapter.dump_json(
        adapter.validate_python({"items": items, "next_cursor": next_cursor, "limit": limit})
    )
    if raw:
        body = _slot_pattern(raw).sub(lambda m: b'"' + m[1] + b'":' + slots[int(m[2])], body)
    return Response(content=body, media_type="application/json")


def _slotted(item: dict[str, Any], raw: tuple[str, ...], slots: list[bytes]) -> dict[str, Any]:
    row = dict(item)
    for name in raw:
        text = row[name]
        row[name] = len(slots)
        slots.append(b"null" if text is None else text.encode())
    return row
