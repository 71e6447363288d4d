"""Keyset pagination on the integer primary key: every page is one index range scan, however deep."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Connection, Integer, Select, bindparam
from sqlalchemy.orm import Session

from backend.schemas.common import Page

T = TypeVar("T")


def keyset_page(
    session: Session, stmt: Select[Any], id_col: Any, cursor: int | None, limit: int, *, desc: bool = False
) -> tuple[list[Any], str | None]:
    """Rows after `cursor` in id order (`desc`: newest first) and the cursor of the next page."""
    if cursor is not None:
        stmt = stmt.where(id_col < cursor if desc else id_col > cursor)
    stmt = stmt.order_by(id_col.desc() if desc else id_col.asc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1].id) if more and rows else None)


def keyset_rows(
    session: Session | Connection,
    stmt: Select[Any],
    id_col: Any,
    cursor: int | None,
    limit: int,
    *,
    desc: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """Like `keyset_page` for a column select: plain dicts, no ORM instances. Builds the statement per call;
    the hottest lists keep theirs (`keyset_select`) and call `fetch_page` directly."""
    return fetch_page(
        session, keyset_select(stmt, id_col, after=cursor is not None, desc=desc), {}, cursor, limit
    )


def keyset_select(stmt: Select[Any], id_col: Any, *, after: bool, desc: bool = False) -> Select[Any]:
    """`stmt` in id order with bind parameters `cursor` (when `after`) and `limit`, for `fetch_page`.

    Build it once per shape of the query (the routes keep them in an `lru_cache`) and execute it with values:
    constructing a select per request (coercing every column and comparison, then its cache key) costs more CPU
    than PostgreSQL spends on the page. The SQL sent is what literal values would give (LIMIT is bound anyway)."""
    if after:
        cursor = bindparam("cursor", type_=id_col.type)
        stmt = stmt.where(id_col < cursor if desc else id_col > cursor)
    return stmt.order_by(id_col.desc() if desc else id_col.asc()).limit(bindparam("limit", type_=Integer()))


def fetch_page(
    conn: Session | Connection, stmt: Select[Any], params: dict[str, Any], cursor: int | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a `keyset_select` statement as plain dicts, and the cursor of the next page."""
    values = {**params, "limit": limit + 1}
    if cursor is not None:
        values["cursor"] = cursor
    result = conn.execute(stmt, values)
    keys = list(result.keys())
    rows = [dict(zip(keys, r, strict=True)) for r in result.all()]  # much cheaper than .mappings()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1]["id"]) if more and rows else None)


def list_page(items: list[Any], cursor: int | None, limit: int) -> Page[Any]:
    """A page of a short list computed in memory (built-in datasets, shipped configs): the cursor is the
    position after the previous page."""
    start = cursor or 0
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return Page[Any](items=chunk, next_cursor=str(start + limit) if more else None, limit=limit)
