"""Fast JSON for the hot list endpoints: rows are validated and serialised by pydantic-core in one pass and
returned as a ready Response (FastAPI would otherwise re-validate and re-encode them)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import Response
from pydantic import TypeAdapter

from backend.schemas.common import Page


@lru_cache
def _adapter(schema: type) -> TypeAdapter[Any]:
    return TypeAdapter(Page[schema])  # type: ignore[valid-type]


def page_response(schema: type, items: list[dict[str, Any]], next_cursor: str | None, limit: int) -> Response:
    """`schema` is the route's item model, or a `*Listed` subclass of it that parses JSON columns read as text
    (same serialised JSON); either way tests validate the bytes against the declared response_model."""
    adapter = _adapter(schema)
    page = adapter.validate_python({"items": items, "next_cursor": next_cursor, "limit": limit})
    return Response(content=adapter.dump_json(page), media_type="application/json")
