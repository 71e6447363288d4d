"""One error body for every failure: `{"detail": {"message", "field", "errors"}}`; no traceback ever leaks."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from aicd.errors import AICDError

log = logging.getLogger("backend")


T = TypeVar("T")


class ApiError(HTTPException):
    """Raise with a status, a message and optionally the offending field."""

    def __init__(
        self,
        status_code: int,
        message: str,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        detail: dict[str, Any] = {"message": message, "field": field}
        if errors:
            detail["errors"] = errors
        super().__init__(status_code=status_code, detail=detail, headers=headers)


def not_found(kind: str, ident: object) -> ApiError:
    return ApiError(404, f"{kind} {ident} not found", field=f"{kind}_id")


def get_or_404(session: Any, model: type[T], ident: object, kind: str) -> T:
    """`session.get(model, ident)`, or the API's 404 naming the resource: the lookup every route shares."""
    obj = session.get(model, ident)
    if obj is None:
        raise not_found(kind, ident)
    return obj


def _body(
    message: str, field: str | None = None, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    detail: dict[str, Any] = {"message": message, "field": field}
    if errors:
        detail["errors"] = errors
    return {"detail": detail}


def _loc(loc: tuple[Any, ...] | list[Any], json_path: str | None = None) -> str:
    """`body.config` -> `config`; with the path a validator found inside a JSON value: `config.train.lr`."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:] or parts
    if json_path:
        parts.append(json_path)
    return ".".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict) and "message" in exc.detail:
            content = {"detail": exc.detail}
        else:
            content = _body(str(exc.detail))
        return JSONResponse(content, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _loc(e.get("loc", ()), (e.get("ctx") or {}).get("json_path")),
                "message": e.get("msg", ""),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        message = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return JSONResponse(_body(message, errors[0]["field"] if errors else None, errors), status_code=422)

    @app.exception_handler(AICDError)
    async def _aicd(_: Request, exc: AICDError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=422)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error: %s", exc.orig)
        return JSONResponse(
            _body("conflicts with an existing record (duplicate name or missing reference)"), status_code=409
        )

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        log.info("data error: %s", exc.orig)
        first = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
        return JSONResponse(
            _body(f"a value is out of range or invalid for the database: {first}"), status_code=422
        )

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # e.g. SQLite given an integer past 64 bits that no schema bound caught
        log.info("overflow: %s", exc)
        return JSONResponse(_body(f"a number is too large: {exc}"), status_code=422)

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", exc.orig)
        return JSONResponse(_body("the database is unavailable; try again shortly"), status_code=503)

    @app.exception_handler(PoolTimeoutError)
    async def _pool_exhausted(_: Request, exc: PoolTimeoutError) -> JSONResponse:
        # every pooled connection stayed busy for the pool timeout: overload, not a bug in the request
        log.warning("database connection pool exhausted: %s", exc)
        return JSONResponse(
            _body("the server is overloaded (no database connection free); try again shortly"),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(_body("internal error; see the server log"), status_code=500)
