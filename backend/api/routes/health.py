from __future__ import annotations

import threading
import time

from fastapi import APIRouter
from sqlalchemy import text

from backend.api.deps import SessionDep, SettingsDep
from backend.core.settings import Settings
from backend.jobs import CeleryDispatcher, get_dispatcher

router = APIRouter(tags=["health"])

BROKER_CACHE_S = 2.0
"""A broker answer is reused this long, so frequent health probes do not each open a broker connection."""
_broker_lock = threading.Lock()
_broker_seen: dict[str, tuple[float, str]] = {}


def broker_status(settings: Settings) -> str:
    """`ok` / `unreachable` for a Celery broker (checked within AICD_BROKER_CHECK_TIMEOUT_S); `embedded`
    when jobs run in the API's own executor."""
    dispatcher = get_dispatcher()
    if not isinstance(dispatcher, CeleryDispatcher):
        return "embedded"
    key = settings.celery_broker or ""
    with _broker_lock:
        seen = _broker_seen.get(key)
        if seen is not None and time.monotonic() - seen[0] < BROKER_CACHE_S:
            return seen[1]
        status = "ok" if dispatcher.ping(settings.broker_check_timeout_s) else "unreachable"
        _broker_seen[key] = (time.monotonic(), status)
        return status


@router.get(
    "/health",
    summary="Liveness, database check and broker reachability (no token needed)",
    description="Answers 200 while the API and its database work. `broker` is `ok`, `unreachable` (new jobs "
    "cannot be queued: creating one answers 503) or `embedded` (no broker: jobs run in the API's executor).",
)
def health(session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {
        "status": "ok",
        "mode": "embedded" if settings.embedded else "celery",
        "database": session.get_bind().dialect.name,
        "broker": broker_status(settings),
    }
