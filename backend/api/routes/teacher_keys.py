"""Teacher API keys per endpoint: set once, used by every later annotation job on that base URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from backend.api.deps import PageDep, SessionDep
from backend.api.errors import ApiError
from backend.models import TeacherKey
from backend.schemas.common import Page, Text
from backend.schemas.teacher import TeacherKeyPublic, TeacherKeyPut
from backend.services import teacher_keys
from backend.services.pagination import keyset_page

router = APIRouter(prefix="/teacher-keys", tags=["teacher keys"])


@router.get(
    "", response_model=Page[TeacherKeyPublic], summary="Endpoints that have a stored key (never the key)"
)
def list_teacher_keys(session: SessionDep, page: PageDep) -> Page[TeacherKeyPublic]:
    items, nxt = keyset_page(session, select(TeacherKey), TeacherKey.id, page.cursor, page.limit)
    return Page[TeacherKeyPublic](items=items, next_cursor=nxt, limit=page.limit)


@router.put("", response_model=TeacherKeyPublic, summary="Store (or replace) the key of one teacher endpoint")
def put_teacher_key(body: TeacherKeyPut, session: SessionDep) -> TeacherKey:
    row = teacher_keys.remember(session, body.base_url, body.api_key.get_secret_value())
    session.commit()
    return row


@router.delete("", status_code=204, summary="Forget the key of one teacher endpoint")
def delete_teacher_key(
    session: SessionDep,
    base_url: Annotated[Text | None, Query(description="the endpoint; empty = OpenAI")] = None,
) -> Response:
    if not teacher_keys.forget(session, base_url):
        raise ApiError(404, f"no key stored for {teacher_keys.endpoint(base_url)}", field="base_url")
    session.commit()
    return Response(status_code=204)
