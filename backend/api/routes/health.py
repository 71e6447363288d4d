from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from backend.api.deps import SessionDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and database check (no token needed)")
def health(session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {
        "status": "ok",
        "mode": "embedded" if settings.embedded else "celery",
        "database": session.get_bind().dialect.name,
    }
