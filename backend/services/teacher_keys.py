"""Teacher keys by endpoint: a key sent once (with a job or on its own) is reused for later jobs on the same
base URL. Keys only ever leave the database towards the worker that calls the teacher."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import TeacherKey

OPENAI_BASE_URL = "https://api.openai.com/v1"


def endpoint(base_url: str | None) -> str:
    """The endpoint a key belongs to: no base URL means OpenAI's (what the SDK uses)."""
    return (base_url or OPENAI_BASE_URL).strip().rstrip("/")


def remember(session: Session, base_url: str | None, api_key: str) -> TeacherKey:
    url = endpoint(base_url)
    row = session.scalar(select(TeacherKey).where(TeacherKey.base_url == url))
    if row is None:
        row = TeacherKey(base_url=url, api_key=api_key)
        session.add(row)
    else:
        row.api_key = api_key
    session.flush()
    return row


def lookup(session: Session, base_url: str | None) -> str | None:
    return session.scalar(select(TeacherKey.api_key).where(TeacherKey.base_url == endpoint(base_url)))


def forget(session: Session, base_url: str | None) -> bool:
    row = session.scalar(select(TeacherKey).where(TeacherKey.base_url == endpoint(base_url)))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
