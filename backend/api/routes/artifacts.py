from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from sqlalchemy import select

from backend.api.deps import IdPath, IdQuery, PageDep, SessionDep, SettingsDep
from backend.api.errors import ApiError, get_or_404
from backend.models import Artifact
from backend.schemas.common import Page
from backend.schemas.jobs import ArtifactPublic
from backend.services.pagination import keyset_page

router = APIRouter(tags=["artifacts"])


def safe_path(root: Path, relative: str) -> Path:
    """Resolve `relative` inside `root`; anything that escapes it (.., absolute, symlinks out) is refused."""
    root = root.resolve()
    if "\x00" in relative:
        raise ApiError(400, "invalid path", field="path")
    try:
        candidate = (root / relative.lstrip("/")).resolve()
        if candidate != root and root not in candidate.parents:
            raise ApiError(400, "path escapes the artifact directory", field="path")
        if not candidate.is_file():
            raise ApiError(404, f"no file at {relative[:200]}", field="path")
    except OSError:  # name too long, permission denied, ...
        raise ApiError(404, f"no file at {relative[:200]}", field="path") from None
    return candidate


@router.get(
    "/artifacts", response_model=Page[ArtifactPublic], summary="Files produced by runs/evaluations/sweeps"
)
def list_artifacts(
    session: SessionDep,
    page: PageDep,
    run_id: IdQuery = None,
    evaluation_id: IdQuery = None,
    sweep_id: IdQuery = None,
) -> Page[ArtifactPublic]:
    stmt = select(Artifact)
    if run_id is not None:
        stmt = stmt.where(Artifact.run_id == run_id)
    if evaluation_id is not None:
        stmt = stmt.where(Artifact.evaluation_id == evaluation_id)
    if sweep_id is not None:
        stmt = stmt.where(Artifact.sweep_id == sweep_id)
    items, nxt = keyset_page(session, stmt, Artifact.id, page.cursor, page.limit)
    return Page[ArtifactPublic](items=items, next_cursor=nxt, limit=page.limit)


@router.get("/artifacts/{artifact_id}/download", response_class=FileResponse, summary="Download one artifact")
def download_artifact(artifact_id: IdPath, session: SessionDep, settings: SettingsDep) -> FileResponse:
    art = get_or_404(session, Artifact, artifact_id, "artifact")
    path = safe_path(settings.artifacts, art.path)
    return FileResponse(path, filename=path.name)


@router.get(
    "/files/{path:path}",
    response_class=FileResponse,
    summary="Download a file by its path inside the artifact directory",
)
def download_file(path: str, settings: SettingsDep) -> FileResponse:
    resolved = safe_path(settings.artifacts, path)
    return FileResponse(resolved, filename=resolved.name)
