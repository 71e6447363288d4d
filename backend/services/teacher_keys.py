"""Teacher keys by endpoint: a key sent once (with a job or on its own) is reused for later jobs on the same
base URL. Keys are stored encrypted (backend.core.secrets) and decrypted only for the worker that calls the
teacher; jobs refer to a key by its endpoint, so forgetting it takes it from every job."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.core import secrets
from backend.models import TeacherKey

OPENAI_BASE_URL = "https://api.openai.com/v1"


def endpoint(base_url: str | None) -> str:
    """The endpoint a key belongs to: no base URL means OpenAI's (what the SDK uses)."""
    return (base_url or OPENAI_BASE_URL).strip().rstrip("/")


def remember(session: Session, base_url: str | None, api_key: str) -> TeacherKey:
    url = endpoint(base_url)
    token = secrets.encrypt(api_key)
    row = session.scalar(select(TeacherKey).where(TeacherKey.base_url == url))
    if row is None:
        row = TeacherKey(base_url=url, api_key_encrypted=token)
        session.add(row)
    else:
        row.api_key_encrypted = token
    session.flush()
    return row


def lookup(session: Session, base_url: str | None) -> str | None:
    """The plain key stored for the endpoint, or None; SecretKeyError if another secret encrypted it."""
    token = session.scalar(
        select(TeacherKey.api_key_encrypted).where(TeacherKey.base_url == endpoint(base_url))
    )
    return None if token is None else secrets.decrypt(token)


def stored(session: Session, urls: Iterable[str]) -> set[str]:
    """Which of these endpoints have a key (one query for a page of jobs)."""
    wanted = set(urls)
    if not wanted:
        return set()
    return set(session.scalars(select(TeacherKey.base_url).where(TeacherKey.base_url.in_(wanted))))


def forget(session: Session, base_url: str | None) -> bool:
    row = session.scalar(select(TeacherKey).where(TeacherKey.base_url == endpoint(base_url)))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
