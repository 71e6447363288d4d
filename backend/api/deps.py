"""Dependencies: a DB session per request, pagination parameters, the id types of paths and queries.

(The bearer-token check and the body-size limits are `backend.api.middleware`: they run before a body is read.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from backend.api.errors import ApiError
from backend.core.settings import Settings, get_settings
from backend.db import read_session_factory, session_factory
from backend.schemas.common import INT32_MAX, MAX_ID, Id

# The dependencies are `async def` on purpose: they do no I/O (the session connects lazily inside the route's
# worker thread), and async dependencies run on the event loop instead of costing a thread hop each.


async def get_session(request: Request) -> AsyncIterator[Session]:
    """GET requests read in autocommit mode (no transaction round trips); others get a transaction."""
    factory = read_session_factory() if request.method in ("GET", "HEAD") else session_factory()
    session = factory()
    try:
        yield session
    finally:
        session.close()


def read_connection() -> Connection:
    """An autocommit Core connection for the hot GET routes, opened by the route itself (`with read_connection()
    as conn:`): they only read columns, so no ORM session (its result wrapping and transaction bookkeeping), and
    as a generator dependency it would cost each request an exit stack, a shielded async exit and a solve."""
    return read_session_factory().kw["bind"].connect()


async def settings_dep() -> Settings:
    return get_settings()


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(settings_dep)]


# Every id in a path or a query has the bounds of `backend.schemas.common.Id` (1 .. 2^63-1): a larger one is a
# 422 naming the parameter on every database (SQLite would otherwise overflow with a 500).
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
IdListQuery = Annotated[list[Id], Query()]
Int32Query = Annotated[int | None, Query(ge=-INT32_MAX - 1, le=INT32_MAX)]
"""Filters on 32-bit integer columns (shots, seed)."""


@dataclass
class PageParams:
    cursor: int | None
    limit: int


def check_page_limit(limit: int) -> None:
    """`limit` of any list: at most AICD_PAGE_MAX (settings are cached; as a sub-dependency they would cost a
    solve per request)."""
    page_max = get_settings().page_max
    if limit > page_max:
        raise ApiError(422, f"limit must be <= {page_max}", field="limit")


async def page_params(
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, description="items per page (at most AICD_PAGE_MAX)")] = 50,
) -> PageParams:
    check_page_limit(limit)
    if cursor is None or cursor == "":
        return PageParams(None, limit)
    if not cursor.isdigit() or int(cursor) >= 2**63:
        raise ApiError(422, "cursor must be a value returned as next_cursor", field="cursor")
    return PageParams(int(cursor), limit)


PageDep = Annotated[PageParams, Depends(page_params)]
