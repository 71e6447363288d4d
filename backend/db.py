"""The one engine and session factory (rebuilt when settings change, e.g. in tests)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads
from pydantic_core import from_json
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from backend.core.settings import get_settings


def make_engine(url: str, *, pooled: bool = True) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kw = {} if pooled else {"poolclass": NullPool}
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, json_serializer=json_dumps, **kw
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # WAL lets the API read while a worker writes
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    engine = _pg_engine(url, pooled)

    @event.listens_for(engine, "connect")
    def _json(dbapi_conn, _record) -> None:
        if isinstance(dbapi_conn, psycopg.Connection):
            set_json_loads(json_loads, dbapi_conn)

    return engine


def json_dumps(value: Any) -> str:
    """JSON columns as written: NaN and infinity are not JSON. PostgreSQL refuses them, so SQLite must too, or a
    stored value would not parse (the lists serve stored JSON text as it is: `api.responses.page_response`)."""
    return json.dumps(value, allow_nan=False)


def json_loads(data: str | bytes) -> Any:
    """JSON/JSONB values as read from PostgreSQL: pydantic-core's parser is ~2.5x faster than `json.loads`, and
    a page of 50 runs decodes 100 configs/metrics. Same values; nesting past its recursion limit (200, stored
    configs stop at 32) falls back to `json.loads`."""
    try:
        return from_json(data)
    except ValueError:
        return json.loads(data)


def _pg_engine(url: str, pooled: bool) -> Engine:
    if not pooled:
        return create_engine(url, poolclass=NullPool, json_serializer=json_dumps)
    # no pre-ping (one round trip per request); stale connections are recycled and errors surface as 5xx once
    settings = get_settings()
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=1800,
        json_serializer=json_dumps,
    )


_FACTORIES: dict[str, sessionmaker[Session]] = {}


def _factory(url: str) -> sessionmaker[Session]:
    if url not in _FACTORIES:
        _FACTORIES[url] = sessionmaker(make_engine(url), expire_on_commit=False)
    return _FACTORIES[url]


def get_engine() -> Engine:
    return _factory(get_settings().db_url).kw["bind"]


def session_factory() -> sessionmaker[Session]:
    return _factory(get_settings().db_url)


_READERS: dict[str, sessionmaker[Session]] = {}


def read_session_factory() -> sessionmaker[Session]:
    """Sessions for read-only requests: autocommit, so no BEGIN/ROLLBACK round trips per request."""
    url = get_settings().db_url
    if url not in _READERS:
        engine = _factory(url).kw["bind"]
        if engine.dialect.name == "sqlite":
            _READERS[url] = _factory(url)
        else:
            _READERS[url] = sessionmaker(
                engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
            )
    return _READERS[url]


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error (workers and background threads)."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset() -> None:
    """Forget cached engines (tests switch databases)."""
    for maker in _FACTORIES.values():
        maker.kw["bind"].dispose()
    _FACTORIES.clear()
    _READERS.clear()
