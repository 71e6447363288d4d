"""FastAPI app `backend.main:app`: REST API under /api/v1, docs at /docs, health at /health.

Start-up runs `alembic upgrade head` (unless AICD_AUTO_MIGRATE=false, as in docker-compose where a one-shot
`migrate` service does it) and a reaper thread that marks jobs whose worker stopped heart-beating as `lost`.
In embedded mode (no broker configured) it also submits queued jobs: those left by a previous API process, and
those its workers queue (a sweep's children).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from backend.api import errors
from backend.api.middleware import RequestGuard
from backend.api.routes import (
    annotations,
    artifacts,
    compare,
    datasets,
    evaluations,
    health,
    live,
    objectives,
    presets,
    preview,
    results,
    runs,
    status,
    sweeps,
    teacher_keys,
)
from backend.core.settings import get_settings
from backend.db import session_scope
from backend.jobs import EmbeddedDispatcher, close_dispatcher, get_dispatcher
from backend.schemas.common import ErrorBody
from backend.services import lifecycle

log = logging.getLogger("backend")
ROOT = Path(__file__).resolve().parents[1]
API_PREFIX = "/api/v1"


def run_migrations(url: str) -> None:
    """`alembic upgrade head` against `url` (the only way the schema is created)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


def _reaper(stop: threading.Event) -> None:
    settings = get_settings()
    while not stop.wait(settings.reaper_interval_s):
        try:
            with session_scope() as session:
                n = lifecycle.reap_stale(session, settings.heartbeat_timeout_s)
            if n:
                log.warning("marked %d job(s) lost (no heartbeat for %ss)", n, settings.heartbeat_timeout_s)
        except Exception:
            log.exception("reaper pass failed")


def _queued_jobs() -> list[tuple[str, int, int, int | None]]:
    with session_scope() as session:
        return lifecycle.queued_jobs(session)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    if settings.auto_migrate:
        run_migrations(settings.db_url)
    stop = threading.Event()
    thread = threading.Thread(target=_reaper, args=(stop,), name="aicd-reaper", daemon=True)
    thread.start()
    if settings.embedded:
        dispatcher = get_dispatcher()
        if isinstance(dispatcher, EmbeddedDispatcher):  # jobs left queued, and those workers will queue
            dispatcher.pending = _queued_jobs
            dispatcher.submit_pending()
    try:
        yield
    finally:
        stop.set()
        close_dispatcher()


def create_app() -> FastAPI:
    app = FastAPI(
        title="AICD Workbench API",
        version="1.0",
        description="Datasets, annotation, training runs, sweeps, evaluations and side-by-side chains. "
        "When AICD_API_TOKEN is set every endpoint except /health and the docs needs `Authorization: Bearer`.",
        lifespan=lifespan,
        responses={code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 422, 503)},
    )
    errors.install(app)
    # token and body size are checked before a body is read (health and the docs stay open)
    open_paths = [p for p in (app.docs_url, app.redoc_url, app.openapi_url) if p]
    if app.docs_url and app.swagger_ui_oauth2_redirect_url:
        open_paths.append(app.swagger_ui_oauth2_redirect_url)
    app.add_middleware(RequestGuard, open_paths=["/health", *open_paths])
    app.include_router(health.router)
    # Each router is included in the app itself under /api/v1, not in an /api/v1 router included in turn: FastAPI
    # matches included routers lazily, level by level, twice per request (match, then handle), so one level less
    # is ~a tenth of a list page's CPU. Same paths, same order, same OpenAPI (tests/backend/test_api_cpu.py).
    for module in (
        datasets,
        annotations,
        teacher_keys,
        runs,
        sweeps,
        evaluations,
        compare,
        artifacts,
        preview,  # UI helpers (ui helper's file)
        objectives,
        presets,  # launch presets (aicd.presets)
        status,  # the UI's one polled read
        live,  # ... and its Runs page panels' (one read per tick each)
        results,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    return app


app = create_app()
