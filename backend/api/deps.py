"""Dependencies: a DB session per request, the bearer-token check, pagination parameters."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from backend.api.errors import ApiError
from backend.core.settings import Settings, get_settings
from backend.db import read_session_factory, session_factory

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


async def settings_dep() -> Settings:
    return get_settings()


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(settings_dep)]


async def require_token(request: Request, settings: SettingsDep) -> None:
    """With AICD_API_TOKEN set, require `Authorization: Bearer <token>` (constant-time comparison)."""
    if settings.api_token is None:
        return
    expected = settings.api_token.get_secret_value()
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise ApiError(
            401,
            "missing or invalid bearer token",
            field="Authorization",
            headers={"WWW-Authenticate": "Bearer"},
        )


TokenDep = Depends(require_token)


@dataclass
class PageParams:
    cursor: int | None
    limit: int


async def page_params(
    settings: SettingsDep,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, description="items per page (at most AICD_PAGE_MAX)")] = 50,
) -> PageParams:
    if limit > settings.page_max:
        raise ApiError(422, f"limit must be <= {settings.page_max}", field="limit")
    if cursor is None or cursor == "":
        return PageParams(None, limit)
    if not cursor.isdigit() or int(cursor) >= 2**63:
        raise ApiError(422, "cursor must be a value returned as next_cursor", field="cursor")
    return PageParams(int(cursor), limit)


PageDep = Annotated[PageParams, Depends(page_params)]
