"""The request guard: bearer token and body size, checked before FastAPI reads a single byte of the body.

A pure ASGI middleware (no BaseHTTPMiddleware: nothing is buffered, streaming is untouched):

- with `AICD_API_TOKEN` set, a request without `Authorization: Bearer <token>` gets 401 at once, whatever its
  body (malformed JSON, a huge upload), except the open paths (health and the docs);
- a declared `Content-Length` over the limit gets 413 at once; a body without one (chunked) is counted as it
  streams in and stopped with 413 when it passes the limit. The limit is `AICD_MAX_UPLOAD_BYTES` (+ room for
  the form fields) for multipart uploads and `AICD_MAX_JSON_BYTES` for every other body.

Responses have the API's error body `{"detail": {"message", "field", "errors"}}`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.errors import ApiError
from backend.core.settings import Settings, get_settings

FORM_OVERHEAD = 64 * 1024
"""Room for multipart boundaries and the small form fields (name, description) next to the uploaded file."""


def body_limit(settings: Settings, content_type: str) -> tuple[int, str]:
    """(bytes allowed, what the limit is called) for a request of this content type."""
    if content_type.lower().startswith("multipart/form-data"):
        return (
            settings.max_upload_bytes + FORM_OVERHEAD,
            f"limit of {settings.max_upload_bytes} bytes for uploads (AICD_MAX_UPLOAD_BYTES)",
        )
    return (
        settings.max_json_bytes,
        f"limit of {settings.max_json_bytes} bytes for requests (AICD_MAX_JSON_BYTES)",
    )


class BodyTooLarge(ApiError):
    """Raised from `receive` when a streamed body passes the limit; FastAPI re-raises HTTPExceptions met while
    reading the body, so the app's handler answers it with the usual error body."""

    def __init__(self, what: str):
        super().__init__(413, f"the request body is larger than the {what}", field="body")


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers") or []}


def _authorized(header: bytes, expected: str) -> bool:
    scheme, _, token = header.decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), expected.encode())


async def _reply(scope: Scope, receive: Receive, send: Send, exc: ApiError) -> None:
    response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    await response(scope, receive, send)


class RequestGuard:
    def __init__(self, app: ASGIApp, open_paths: Iterable[str] = ("/health",)):
        self.app = app
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        headers = _headers(scope)
        if settings.api_token is not None and scope["path"] not in self.open_paths:
            if not _authorized(headers.get(b"authorization", b""), settings.api_token.get_secret_value()):
                exc = ApiError(
                    401,
                    "missing or invalid bearer token",
                    field="Authorization",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await _reply(scope, receive, send, exc)
                return

        limit, what = body_limit(settings, headers.get(b"content-type", b"").decode("latin-1"))
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reply(scope, receive, send, ApiError(400, "invalid Content-Length", field="body"))
                return
            if int(declared) > limit:
                await _reply(scope, receive, send, BodyTooLarge(what))
                return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(what)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:  # read outside FastAPI's body parsing (nothing answered it yet)
            if started:
                raise
            await _reply(scope, receive, send, exc)
