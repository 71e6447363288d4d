"""The `openai` backend: any OpenAI-compatible completions endpoint (`vllm serve`, SGLang, TGI, llama.cpp, Ollama).

Prompts go out as the token ids evaluation built (the completions API accepts a list of ids), so the server
sees exactly what the `hf` backend would; greedy (`temperature=0`), the same stop strings, and the reply is
cut at them again in case a server leaves one in. Up to `concurrency` requests are in flight (an asyncio
semaphore on the SDK's async client, in a background thread so evaluation stays synchronous); retries of
429/5xx/timeouts with exponential backoff are the SDK's own (`max_retries`), each request bounded by `timeout`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from aicd.errors import ConfigError
from aicd.generation.base import PromptInput
from aicd.generation.text import cut_at_stop

PLACEHOLDER_KEY = "EMPTY"  # local servers ignore the key, the SDK insists on one


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        max_new_tokens: int,
        api_key: str | None = None,
        concurrency: int = 32,
        max_retries: int = 6,
        timeout: float = 120.0,
    ) -> None:
        self.base_url, self.model, self.max_new_tokens = base_url.rstrip("/"), model, max_new_tokens
        self.api_key, self.concurrency = api_key, concurrency
        self.max_retries, self.timeout = max_retries, timeout
        self.max_in_flight = 0  # the most requests that were ever open at once (tests and benchmarks read it)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None

    def check_reachable(self) -> None:
        """Fail fast, before anything is generated or written, when nothing answers at base_url."""
        check_server(self.base_url, timeout=min(self.timeout, 10.0))

    def _start(self) -> asyncio.AbstractEventLoop:
        """One event loop thread and one client for the backend's life (connections and TLS setup are reused)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="aicd-openai-eval", daemon=True
            )
            self._thread.start()
            self._client = asyncio.run_coroutine_threadsafe(self._make_client(), self._loop).result()
        return self._loop

    async def _make_client(self) -> Any:
        import os

        import openai

        kwargs: dict[str, Any] = {}
        try:
            import aiohttp  # noqa: F401 - the SDK's aiohttp transport costs less CPU per request

            kwargs["http_client"] = openai.DefaultAioHttpClient(timeout=self.timeout)
        except ImportError:
            pass
        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY,
            max_retries=self.max_retries,
            timeout=self.timeout,
            **kwargs,
        )

    def stream(self, prompts: Sequence[PromptInput], stop: Sequence[str]) -> Iterator[tuple[int, str]]:
        results: queue.Queue[tuple[int, str] | BaseException] = queue.Queue()
        cancel = threading.Event()
        done = asyncio.run_coroutine_threadsafe(
            self._run(list(prompts), list(stop), results, cancel), self._start()
        )
        try:
            for _ in range(len(prompts)):
                item = results.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()
            done.result()

    async def _run(
        self,
        prompts: list[PromptInput],
        stop: list[str],
        results: queue.Queue[tuple[int, str] | BaseException],
        cancel: threading.Event,
    ) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        in_flight = 0
        stop = [s for s in stop if s]

        async def one(i: int, prompt: PromptInput) -> None:
            nonlocal in_flight
            body = {
                "model": self.model,
                "prompt": prompt if isinstance(prompt, str) else list(prompt),
                "max_tokens": self.max_new_tokens,
                "temperature": 0.0,
                **({"stop": stop} if stop else {}),
            }
            async with slots:
                if cancel.is_set():
                    return
                in_flight += 1
                self.max_in_flight = max(self.max_in_flight, in_flight)
                try:
                    # the SDK's request path (retries, timeouts, errors) without its per-element walk over
                    # the params (O(prompt tokens) of Python for a token-id prompt) or building response
                    # models: `cast_to=object` returns the JSON as it came
                    reply = await self._client.post("/completions", body=body, cast_to=object)
                finally:
                    in_flight -= 1
                results.put((i, cut_at_stop(_completion_text(reply), stop)))

        tasks = [asyncio.create_task(one(i, p)) for i, p in enumerate(prompts)]
        try:
            for finished in asyncio.as_completed(tasks):
                await finished
                if cancel.is_set():
                    break
        except Exception as exc:  # a request that failed after its retries: evaluation stops with it
            results.put(_readable(exc, self.base_url))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Close the client and stop the loop thread."""
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join()
        self._loop.close()
        self._loop = self._thread = self._client = None


def _completion_text(reply: Any) -> str:
    """The text of a completions reply's first choice; a reply without one is the server's error."""
    try:
        return reply["choices"][0]["text"] or ""
    except (KeyError, IndexError, TypeError):
        raise RuntimeError(f"openai backend: a reply without choices[0].text: {str(reply)[:200]}") from None


def check_server(base_url: str, *, timeout: float = 10.0) -> None:
    """ConfigError naming base_url when no server answers there (any HTTP answer, even a 404, is a server)."""
    import openai

    client = openai.OpenAI(
        base_url=base_url.rstrip("/"), api_key=PLACEHOLDER_KEY, max_retries=1, timeout=timeout
    )
    try:
        client.models.list()
    except openai.APIStatusError:
        pass
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(
            f"base_url: cannot reach an OpenAI-compatible server at {base_url} "
            f"({type(cause).__name__}: {str(cause)[:120] or 'no answer'})"
        ) from None
    finally:
        client.close()


def _readable(exc: Exception, base_url: str) -> Exception:
    """An SDK error after its retries as one line naming the server."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return RuntimeError(
            f"openai backend: {base_url} answered {exc.status_code} ({str(exc.message)[:200]})"
        )
    if isinstance(exc, openai.APIError):
        return RuntimeError(f"openai backend: request to {base_url} failed ({type(exc).__name__}: {exc})")
    return exc
