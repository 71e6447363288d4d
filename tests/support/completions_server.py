"""A real OpenAI-compatible completions server (FastAPI on uvicorn, in a thread) for tests and benchmarks.

`POST /v1/completions` answers either with a local model through the `hf` backend (`model=`, one request at a
time) or with a canned chain derived from the prompt (`model=None`: cheap, deterministic), after `latency`
seconds. Faults are injected on purpose: one request in `1/fault_every` fails in turn with 429, 500 or a hang
longer than the client's timeout. `GET /v1/models` lists the served name. Counters say what happened.

    server = CompletionsServer(model=model, tokenizer=tok).start()
    ... base_url=server.base_url ...
    server.close()
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

CANNED_NAME = "canned"


def canned_chain(prompt: list[int] | str) -> str:
    """A chain that depends only on the prompt, with an answer to extract."""
    n = sum(prompt) if isinstance(prompt, list) else sum(map(ord, prompt))
    return f" Adding up gives {n % 97}. So, the answer is {n % 97}."


class CompletionsServer:
    def __init__(
        self,
        *,
        model: Any = None,
        tokenizer: Any = None,
        served_name: str = CANNED_NAME,
        latency: float = 0.0,
        fault_every: int = 0,
        hang_s: float = 3.0,
    ) -> None:
        self.model, self.tokenizer, self.served_name = model, tokenizer, served_name
        self.latency, self.fault_every, self.hang_s = latency, fault_every, hang_s
        self.counts: Counter[str] = Counter()  # "ok", "429", "500", "hang"
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._n = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def _fault(self) -> str | None:
        with self._lock:
            self._n += 1
            n = self._n
        if not self.fault_every or n % self.fault_every:
            return None
        return ("429", "500", "hang")[(n // self.fault_every) % 3]

    def _complete(self, prompt: list[int] | str, max_tokens: int, stop: list[str]) -> str:
        if self.model is None:
            return canned_chain(prompt)
        from aicd.generation.hf import generate

        with self._lock:  # one generation at a time on the shared model
            return generate(
                self.model, self.tokenizer, [prompt], batch_size=1, max_new_tokens=max_tokens, stop=stop
            )[0]

    def app(self) -> Any:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": self.served_name, "object": "model"}]}

        @app.post("/v1/completions")
        async def completions(request: Request) -> Any:
            body = await request.json()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                fault = self._fault()
                if self.latency:
                    await asyncio.sleep(self.latency)
                if fault == "hang":
                    self.counts["hang"] += 1
                    await asyncio.sleep(self.hang_s)
                if fault in ("429", "500"):
                    self.counts[fault] += 1
                    headers = {"retry-after-ms": "20"} if fault == "429" else {}
                    return JSONResponse(
                        {"error": {"message": f"injected {fault}"}}, int(fault), headers=headers
                    )
                stop = body.get("stop") or []
                stop = [stop] if isinstance(stop, str) else stop
                text = await run_in_threadpool(self._complete, body["prompt"], int(body["max_tokens"]), stop)
                self.counts["ok"] += 1
                return {
                    "id": "cmpl-test",
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": body.get("model", self.served_name),
                    "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                }
            finally:
                self.in_flight -= 1

        return app

    def start(self) -> CompletionsServer:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("completions test server did not start")
            time.sleep(0.02)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def main() -> None:
    """`python -m tests.support.completions_server --port P --latency 0.1`: the canned server in its own process."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-every", type=int, default=0)
    args = parser.parse_args()
    server = CompletionsServer(latency=args.latency, fault_every=args.fault_every)
    uvicorn.run(server.app(), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
