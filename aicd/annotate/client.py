"""Teacher calls over the OpenAI-compatible chat API (OpenAI, vLLM, Ollama), with retries and redaction.

Retries are tenacity's (exponential backoff with jitter up to `backoff_max`; a server's `Retry-After` /
`retry-after-ms` wins, up to `retry_after_max`, and the wait ends early on a stop) on 429, 5xx, timeouts and
connection errors; the SDK's own retry is off so every attempt passes the rate limiter.
401/403/404 abort the run (`TeacherError`): retrying cannot fix a key or a model name.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from aicd.annotate.breaker import CircuitBreaker
from aicd.annotate.config import AnnotateConfig
from aicd.annotate.limits import RateLimits, estimate_tokens
from aicd.errors import AICDError

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
_SDK_PREFIX = re.compile(r"^Error code: \d+ - ")


class TeacherError(AICDError):
    """The teacher endpoint cannot serve this run at all (no key, bad key, unreachable, unknown model)."""


class BadResponse(Exception):
    """The server answered 200 with something that is not a chat completion."""


class NSupportError(Exception):
    """The server rejected n > 1 (an HTTP 400 about `n`) in auto mode: ask again with single requests."""


class _StopWaiting(Exception):
    """The stop check turned true while waiting to retry: give up with the last error instead of asking again."""


_N_PARAM_RE = re.compile(r"(?<![\w'’])[`'\"]?n[`'\"]?(?![\w'’])")
"""A standalone `n` in an error message ("n > 1 is not supported", "'n' must be 1", "Invalid value for `n`")."""


def is_n_rejection(exc: openai.BadRequestError) -> bool:
    """Whether a 400 is the server refusing the `n` parameter (not, e.g., a prompt over the context length)."""
    if getattr(exc, "param", None) == "n":
        return True
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") if isinstance(body.get("message"), str) else str(exc.message)
    return _N_PARAM_RE.search(_SDK_PREFIX.sub("", message)) is not None


def redact(text: str, secret: str | None) -> str:
    """Replace the secret (if any) by `***` so it cannot leak through an error message or a log line."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `Retry-After` as seconds or HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def is_retryable(exc: BaseException) -> bool:
    """429, 408/409, 5xx, timeouts and connection errors are worth another try; other 4xx are not."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


class wait_backoff(wait_base):  # noqa: N801 - tenacity's naming
    """`min(initial · 2^(attempt-1) + uniform(0, jitter), max_wait)`: exponential backoff with jitter.

    The formula of tenacity's `wait_exponential_jitter`, written out because that class's first keyword changed:
    tenacity 8.2 (the oldest the project declares) takes only `initial`; a 9.x release (jd/tenacity#629) added
    `multiplier` and deprecated `initial`, so no single call works on the whole range without a warning.
    """

    def __init__(self, initial: float, max_wait: float, jitter: float):
        self.initial, self.max_wait, self.jitter = initial, max_wait, jitter

    def __call__(self, retry_state: RetryCallState) -> float:
        try:
            base = self.initial * 2 ** (retry_state.attempt_number - 1)
        except OverflowError:
            return self.max_wait
        return max(0.0, min(base + random.uniform(0, self.jitter), self.max_wait))


class wait_retry_after(wait_base):  # noqa: N801 - tenacity's naming
    """Honour the server's Retry-After when it sends one (capped at `max_wait`), else the fallback backoff."""

    def __init__(self, fallback: wait_base, max_wait: float):
        self.fallback = fallback
        self.max_wait = max_wait

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        seconds = retry_after_seconds(exc)
        if seconds is None:
            return self.fallback(retry_state)
        return min(seconds, self.max_wait)


class stop_when(stop_base):  # noqa: N801
    def __init__(self, predicate: Callable[[], bool]):
        self.predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.predicate()


@dataclass
class Completion:
    """One successful request: the choices' texts and finish reasons, usage and how it went."""

    choices: list[tuple[str, str | None]]
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    latency_s: float
    usage_estimated: bool = False


@dataclass
class ClientStats:
    requests: int = 0
    succeeded: int = 0  # requests answered 200 with a chat completion
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(exc))
        exc = nxt


def is_connect_failure(exc: BaseException) -> bool:
    """A refused connection, an unknown host or a dropped connection, as opposed to a request that timed out."""
    if not isinstance(exc, openai.APIConnectionError):
        return False
    if not isinstance(exc, openai.APITimeoutError):
        return True
    root = _root_cause(exc)  # the aiohttp transport reports a refused connection as a timeout
    return isinstance(root, OSError) and not isinstance(root, TimeoutError)


def describe_error(exc: BaseException, secret: str | None) -> str:
    """A one-line, key-free description of a request error."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("message") if isinstance(body.get("message"), str) else exc.message
        msg = f"HTTP {exc.status_code}: {_SDK_PREFIX.sub('', str(detail))}"
    elif isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        root = _root_cause(exc)
        if isinstance(root, OSError) and not isinstance(root, TimeoutError):
            # a refused connection or unknown host (the aiohttp transport reports these as timeouts)
            msg = f"connection error: {root}"
        elif isinstance(exc, openai.APITimeoutError):
            msg = "request timed out"
        else:
            msg = f"connection error: {exc.__cause__ or exc}"
    else:
        msg = f"{type(exc).__name__}: {exc}"
    return redact(" ".join(msg.split()), secret)


def _http_client(config: AnnotateConfig) -> Any:
    """The SDK's aiohttp transport when installed (`openai[aiohttp]`, less CPU per request), else its default."""
    if config.http_backend == "httpx":
        return None
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        if config.http_backend == "aiohttp":
            raise TeacherError(
                "http_backend 'aiohttp' needs the aiohttp package (pip install 'openai[aiohttp]')"
            ) from None
        return None
    return openai.DefaultAioHttpClient(timeout=config.timeout)


class TeacherClient:
    """An async OpenAI-compatible client bound to one run's config, limits and stop check."""

    def __init__(self, config: AnnotateConfig, *, should_stop: Callable[[], bool] | None = None):
        self.config = config
        self.secret = config.resolved_api_key()
        self.base_url = config.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_URL
        if self.secret is None and self.base_url.rstrip("/") == OPENAI_DEFAULT_URL:
            raise TeacherError(
                "no API key: set OPENAI_API_KEY or pass --api-key (for a local vLLM/Ollama server pass --base-url)"
            )
        self.should_stop = should_stop or (lambda: False)
        self.limits = RateLimits(config.concurrency, config.rpm, config.tpm)
        self.stats = ClientStats()
        self.breaker = CircuitBreaker(config.breaker_after)
        self.n_supported: bool | None = {"batch": True, "single": False}.get(config.n_mode)
        self._client = openai.AsyncOpenAI(
            api_key=self.secret or "EMPTY",  # local servers accept any key
            base_url=self.base_url,
            timeout=config.timeout,
            max_retries=0,
            http_client=_http_client(config),
        )

    async def close(self) -> None:
        await self._client.close()

    def _fatal(self, exc: openai.APIStatusError) -> TeacherError:
        detail = describe_error(exc, self.secret)
        if exc.status_code == 401 and self.secret is None:
            return TeacherError(
                f"the teacher server at {self.base_url} requires an API key ({detail}); "
                "set OPENAI_API_KEY or pass --api-key"
            )
        if exc.status_code == 401:
            return TeacherError(
                f"the teacher server at {self.base_url} rejected the API key ({detail}); "
                "set OPENAI_API_KEY or pass --api-key"
            )
        if exc.status_code == 404:
            return TeacherError(
                f"unknown teacher model '{self.config.teacher}' at {self.base_url} ({detail}); "
                "check --teacher, and that --base-url ends in /v1"
            )
        return TeacherError(f"the teacher server at {self.base_url} refused the request ({detail})")

    async def preflight(self) -> None:
        """Fail fast, before any money is spent or any file is written, on a bad URL, key or model name."""
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(3),
                wait=wait_backoff(0.2, 1.0, 0.2),
                retry=retry_if_exception(lambda e: isinstance(e, openai.APIConnectionError)),
                reraise=True,
            ):
                with attempt:
                    page = await self._client.models.list()
        except openai.APIConnectionError as exc:
            raise TeacherError(
                f"cannot reach the teacher server at {self.base_url} ({describe_error(exc, self.secret)})"
            ) from None
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                raise self._fatal(exc) from None
            return  # the server has no usable /models; the first request will tell
        ids = [m.id for m in page.data]
        # Ollama lists `llama3:latest` and serves it as `llama3` too
        if ids and self.config.teacher not in ids and f"{self.config.teacher}:latest" not in ids:
            shown = ", ".join(sorted(ids)[:10]) + (" …" if len(ids) > 10 else "")
            raise TeacherError(
                f"unknown teacher model '{self.config.teacher}' at {self.base_url}; it serves: {shown}"
            )

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        messages = []
        if self.config.system_prompt:
            messages.append({"role": "system", "content": self.config.system_prompt})
        messages.append({"role": "user", "content": prompt})
        return messages

    async def _once(self, prompt: str, n: int) -> Any:
        cfg = self.config
        async with self.limits.semaphore:
            await self.limits.acquire(estimate_tokens(prompt, cfg.max_tokens, n))
            self.stats.requests += 1
            body: dict[str, Any] = {
                "model": cfg.teacher,
                "messages": self._messages(prompt),
                "temperature": cfg.temperature,
                "max_tokens": cfg.max_tokens,
            }
            if n > 1:
                body["n"] = n
            if cfg.stop:
                body["stop"] = cfg.stop
            # The SDK's documented raw-request path (`client.post(..., cast_to=object)`): same auth, timeouts and
            # error types as `chat.completions.create`, without its typed-params transform and response model
            # build, which were ~35% of the client's CPU per request at concurrency 32 (bench/bench_annotate.py).
            return await self._client.post("/chat/completions", body=body, cast_to=object)

    def breaker_open(self, reason: str) -> TeacherError:
        return TeacherError(
            f"stopped asking the teacher server at {self.base_url}: {reason}; "
            "check the server (or --base-url, --timeout), then resume: stored samples are not asked again"
        )

    async def _attempt(self, prompt: str, n: int) -> Any:
        """One request; its failure counts towards the circuit breaker (which raises `TeacherError` once open)."""
        try:
            response = await self._once(prompt, n)
        except Exception as exc:
            if is_retryable(exc):
                status = getattr(exc, "status_code", None)
                reason = self.breaker.request_failed(
                    describe_error(exc, self.secret), rate_limited=status == 429
                )
                if reason is not None and not self.breaker.any_success and is_connect_failure(exc):
                    raise TeacherError(  # refused / unknown host: say so plainly
                        f"cannot reach the teacher server at {self.base_url} ({describe_error(exc, self.secret)})"
                    ) from None
                if reason is not None:
                    raise self.breaker_open(reason) from None
            raise
        self.breaker.request_ok()
        return response

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        kind = type(exc).__name__ if exc else "?"
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1

    async def _sleep(self, seconds: float) -> None:
        """Wait before a retry, polling the stop check so that a long Retry-After does not hold up a stop."""
        end = time.monotonic() + seconds
        while True:
            if self.should_stop():
                raise _StopWaiting
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.1))

    async def _retry(self, prompt: str, n: int, first: BaseException, t0: float) -> tuple[Any, int]:
        """Retries after a failed first attempt (`first`, replayed as tenacity's attempt 1 so waits, stops and
        counts are exactly those of a loop that made it); returns the response and the attempts it took."""
        cfg = self.config
        attempts = 1
        last: list[BaseException] = []
        pending = [first]

        def before_sleep(state: RetryCallState) -> None:
            self._before_sleep(state)
            exc = state.outcome.exception() if state.outcome else None
            if exc is not None:
                last[:] = [exc]

        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop_after_attempt(cfg.max_retries + 1)
            | stop_after_delay(max(0.0, cfg.max_retry_time - (time.monotonic() - t0)))
            | stop_when(self.should_stop),
            wait=wait_retry_after(
                wait_backoff(cfg.backoff_initial, cfg.backoff_max, cfg.backoff_initial), cfg.retry_after_max
            ),
            retry=retry_if_exception(is_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if pending:
                        raise pending.pop()
                    response = await self._attempt(prompt, n)
        except _StopWaiting:
            raise last[0] from None  # stopped while waiting to retry: the error that made us wait
        except Exception as exc:
            exc.attempts = attempts  # type: ignore[attr-defined]
            raise
        return response, attempts

    async def complete(self, prompt: str, n: int) -> Completion:
        """One chat completion with `n` choices, retried; raises the last error (also when stopped mid-retry),
        TeacherError (fatal) or NSupportError."""
        t0 = time.monotonic()
        attempts = 1
        try:
            try:  # most requests succeed at once: only a retryable failure pays for tenacity's machinery
                response = await self._attempt(prompt, n)
            except Exception as first:
                if not is_retryable(first) or self.config.max_retries == 0 or self.should_stop():
                    raise
                response, attempts = await self._retry(prompt, n, first, t0)
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
            raise self._fatal(exc) from None
        except openai.BadRequestError as exc:
            if n > 1 and self.config.n_mode == "auto" and is_n_rejection(exc):
                raise NSupportError() from None
            exc.attempts = getattr(exc, "attempts", attempts)  # type: ignore[attr-defined]
            raise
        except Exception as exc:  # the attempts are stored with the failure record (`_retry` counted its own)
            exc.attempts = getattr(exc, "attempts", attempts)  # type: ignore[attr-defined]
            raise
        if not isinstance(response, dict) or not isinstance(response.get("choices"), list):
            raise BadResponse(f"the server's reply has no 'choices' list: {str(response)[:200]}")
        self.stats.succeeded += 1
        ordered = sorted(
            (c for c in response["choices"] if isinstance(c, dict)), key=lambda c: c.get("index") or 0
        )
        choices = [
            (str((c.get("message") or {}).get("content") or ""), c.get("finish_reason")) for c in ordered
        ]
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else None
        if usage is not None:
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
            estimated = False
        else:
            prompt_tokens = len(prompt) // 4 + 1
            completion_tokens = sum(len(t) // 4 + 1 for t, _ in choices)
            estimated = True
        return Completion(
            choices, prompt_tokens, completion_tokens, attempts, time.monotonic() - t0, estimated
        )
