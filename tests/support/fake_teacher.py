"""A real OpenAI-compatible HTTP server for tests and benchmarks: deterministic rationales, injected faults.

It speaks just enough of the API for `aicd annotate`: `POST /v1/chat/completions` (with `n`, `usage`,
`finish_reason`) and `GET /v1/models`. Faults are injected on purpose (latency, 429 with `Retry-After`, 500,
hung requests, 401 without the right key, 404 for an unknown model, 400s, replies without choices) and every
request is recorded so tests can assert what the client asked for.

    base_url, handle = start_fake_teacher(latency=0.05, fail_rate=0.1)
    ...
    handle.requests        # list of FakeRequest
    handle.close()

or, for another process: `python -m tests.support.fake_teacher --port 8111 --latency 0.1`.

Rationales depend only on (question, sample index), so retries and reruns see identical text. About 1 in 10 gives
a wrong answer and 1 in 10 mentions the hint, so the annotate filters have something to drop; the endings vary
("The answer is X.", "So the answer is X", "#### X") so ending normalisation is exercised.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_QUESTION_RE = re.compile(r"Question:\s*(.*?)\s*Hint:", re.S)
_ANSWER_RE = re.compile(r"answer should be\s*(.*?)\.?\s*(?:Answer:|$)", re.S | re.I)


@dataclass
class FakeRequest:
    """What one request asked for and how the server answered it."""

    model: str
    n: int
    prompt: str
    question: str | None
    answer: str | None
    status: int
    fault: str | None  # "429", "500", "hang", "auth", "model", "n", "400", "empty" or None
    t_start: float
    t_end: float = 0.0
    prompt_tokens: int = 0  # the usage the server reported for this request (0 when it sent none)
    completion_tokens: int = 0


@dataclass
class FakeTeacherOptions:
    """Knobs; they may be changed while the server runs (e.g. `handle.options.fail_rate = 0`)."""

    models: tuple[str, ...] = ("fake-teacher", "gpt-3.5-turbo")
    latency: float = 0.0  # seconds per request
    latency_jitter: float = 0.0  # extra uniform [0, jitter) seconds
    fail_rate: float = 0.0  # fraction of requests answered by an error (429 or 500, see fail_kinds)
    fail_kinds: tuple[str, ...] = ("429", "500")  # which errors injected failures use (drawn evenly)
    fail_first: int = 0  # the first N chat requests fail (kinds cycle through fail_kinds)
    retry_after: float = 0.05  # seconds sent in Retry-After (and retry-after-ms) on 429
    send_retry_after_ms: bool = True  # False: only the standard Retry-After header
    hang_rate: float = 0.0  # fraction of requests that hang for `hang_s` (client must time out)
    hang_s: float = 30.0
    require_key: str | None = None  # if set, requests without `Authorization: Bearer <key>` get 401
    n_mode: str = "ok"  # "ok": honour n; "ignore": always 1 choice (like Ollama); "reject": 400 if n > 1
    n_reject_message: str = "n > 1 is not supported by this server"  # the 400's message with n_mode="reject"
    n_reject_param: str | None = None  # ... and its error.param (OpenAI sends "n")
    bad_request_questions: tuple[
        str, ...
    ] = ()  # questions containing any of these get a 400 (context length)
    empty_choices: bool = False  # answer 200 with usage but `"choices": []`
    fail_questions: tuple[str, ...] = ()  # questions containing any of these always get a 500
    wrong_every: int = 10  # sample s of question q is wrong when hash(q, s) % wrong_every == 0 (0: never)
    hint_every: int = 10  # ... mentions the hint when hash % hint_every == 1 (0: never)
    seed: int = 0


def _digest(*parts: Any) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _wrong(answer: str) -> str:
    try:
        return str(int(float(answer)) + 1)
    except ValueError:
        return {"yes": "no", "no": "yes"}.get(answer.lower(), answer + "0")


def rationale_for(question: str, answer: str, sample: int, opts: FakeTeacherOptions | None = None) -> str:
    """The deterministic rationale the server gives for (question, sample index)."""
    opts = opts or FakeTeacherOptions()
    h = _digest(question, sample)
    steps = f"We read the question carefully: {question[:60].strip()} Step {h % 7 + 1}: work it out."
    if opts.wrong_every and h % opts.wrong_every == 0:
        return f"{steps} So the answer is {_wrong(answer)}."
    if opts.hint_every and h % opts.hint_every == 1:
        return f"{steps} As the hint says, the answer is {answer}."
    endings = (
        f"The answer is {answer}.",
        f"So the answer is {answer}",
        f"Therefore, the answer is {answer}.",
        f"#### {answer}",
    )
    return f"{steps} {endings[(h // 97) % len(endings)]}"


def _prompt_of(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    return "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))


class FakeTeacherHandle:
    """A running server: its options, the requests it saw, and `close()`."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread, options: FakeTeacherOptions):
        self.server = server
        self.thread = thread
        self.options = options
        self.requests: list[FakeRequest] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.rng = random.Random(options.seed)
        self.in_flight = 0
        self.chat_count = 0  # chat requests that got past auth/model checks
        self.max_in_flight = 0

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def ok_requests(self) -> list[FakeRequest]:
        with self.lock:
            return [r for r in self.requests if r.status == 200]

    def faults(self) -> dict[str, int]:
        with self.lock:
            counts: dict[str, int] = {}
            for r in self.requests:
                if r.fault:
                    counts[r.fault] = counts.get(r.fault, 0) + 1
            return counts

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.max_in_flight = 0
            self.chat_count = 0

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> FakeTeacherHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_handler(handle: FakeTeacherHandle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms stalls

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            return

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _error(
            self,
            status: int,
            message: str,
            kind: str,
            headers: dict[str, str] | None = None,
            param: str | None = None,
        ) -> None:
            self._send(
                status, {"error": {"message": message, "type": kind, "code": None, "param": param}}, headers
            )

        def _auth_fault(self) -> bool:
            want = handle.options.require_key
            if want is None:
                return False
            got = self.headers.get("Authorization", "")
            if got == f"Bearer {want}":
                return False
            # Like the real API, echo (part of) the key back: clients must redact it.
            shown = got.removeprefix("Bearer ")
            self._error(401, f"Incorrect API key provided: {shown}.", "invalid_request_error")
            return True

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/v1/models":
                self._error(404, f"no route {self.path}", "invalid_request_error")
                return
            if self._auth_fault():
                return
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in handle.options.models
            ]
            self._send(200, {"object": "list", "data": data})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, f"no route {self.path}", "invalid_request_error")
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._error(400, "invalid JSON body", "invalid_request_error")
                return
            opts = handle.options
            prompt = _prompt_of(body)
            qm, am = _QUESTION_RE.search(prompt), _ANSWER_RE.search(prompt)
            question = qm.group(1) if qm else None
            answer = am.group(1).strip() if am else None
            n = int(body.get("n") or 1)
            rec = FakeRequest(
                model=str(body.get("model")),
                n=n,
                prompt=prompt,
                question=question,
                answer=answer,
                status=200,
                fault=None,
                t_start=time.monotonic(),
            )
            with handle.lock:
                handle.requests.append(rec)
                handle.in_flight += 1
                handle.max_in_flight = max(handle.max_in_flight, handle.in_flight)
                roll_fail, roll_hang, roll_kind = (
                    handle.rng.random(),
                    handle.rng.random(),
                    handle.rng.random(),
                )
                jitter = handle.rng.random() * opts.latency_jitter
            try:
                self._complete(rec, body, opts, roll_fail, roll_hang, roll_kind, jitter)
            finally:
                rec.t_end = time.monotonic()
                with handle.lock:
                    handle.in_flight -= 1

        def _complete(
            self,
            rec: FakeRequest,
            body: dict[str, Any],
            opts: FakeTeacherOptions,
            roll_fail: float,
            roll_hang: float,
            roll_kind: float,
            jitter: float,
        ) -> None:
            if self._auth_fault():
                rec.status, rec.fault = 401, "auth"
                return
            if rec.model not in opts.models and f"{rec.model}:latest" not in opts.models:  # Ollama's tags
                rec.status, rec.fault = 404, "model"
                self._error(
                    404,
                    f"The model `{rec.model}` does not exist or you do not have access to it.",
                    "invalid_request_error",
                )
                return
            if opts.n_mode == "reject" and rec.n > 1:
                rec.status, rec.fault = 400, "n"
                self._error(400, opts.n_reject_message, "invalid_request_error", param=opts.n_reject_param)
                return
            if rec.question and any(marker in rec.question for marker in opts.bad_request_questions):
                rec.status, rec.fault = 400, "400"
                self._error(
                    400,
                    "This model's maximum context length is 4096 tokens. However, your messages resulted in "
                    "5012 tokens. Please reduce the length of the messages.",
                    "invalid_request_error",
                    param="messages",
                )
                return
            if opts.latency or jitter:
                time.sleep(opts.latency + jitter)
            if roll_hang < opts.hang_rate:
                rec.status, rec.fault = 0, "hang"
                handle.closing.wait(opts.hang_s)
                self.close_connection = True
                return
            if rec.question and any(marker in rec.question for marker in opts.fail_questions):
                rec.status, rec.fault = 500, "500"
                self._error(500, "injected permanent failure", "server_error")
                return
            with handle.lock:
                handle.chat_count += 1
                forced = handle.chat_count <= opts.fail_first
                seq = handle.chat_count - 1
            if forced or roll_fail < opts.fail_rate:
                kinds = opts.fail_kinds or ("500",)
                kind = (
                    kinds[seq % len(kinds)]
                    if forced
                    else kinds[min(int(roll_kind * len(kinds)), len(kinds) - 1)]
                )
                if kind == "429":
                    rec.status, rec.fault = 429, "429"
                    headers = {"Retry-After": f"{opts.retry_after:g}"}
                    if opts.send_retry_after_ms:
                        headers["retry-after-ms"] = str(int(opts.retry_after * 1000))
                    self._error(429, "Rate limit reached (injected)", "requests", headers)
                else:
                    rec.status, rec.fault = 500, "500"
                    self._error(500, "The server had an error (injected)", "server_error")
                return
            question, answer = rec.question or rec.prompt, rec.answer or "0"
            n_out = 0 if opts.empty_choices else 1 if opts.n_mode == "ignore" else rec.n
            if opts.empty_choices:
                rec.fault = "empty"
            choices, completion_tokens = [], 0
            for i in range(n_out):
                text = rationale_for(question, answer, i, opts)
                completion_tokens += max(1, len(text) // 4)
                choices.append(
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                )
            prompt_tokens = max(1, len(rec.prompt) // 4)
            rec.prompt_tokens, rec.completion_tokens = prompt_tokens, completion_tokens
            payload = {
                "id": f"chatcmpl-{_digest(question, time.time()):x}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": rec.model,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
            self._send(200, payload)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # listen() backlog; the default 5 drops connections under concurrency


def start_fake_teacher(
    host: str = "127.0.0.1", port: int = 0, **options: Any
) -> tuple[str, FakeTeacherHandle]:
    """Start the server in a daemon thread; returns (base_url ending in /v1, handle)."""
    opts = FakeTeacherOptions(**options)
    server = _Server((host, port), BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    handle = FakeTeacherHandle(server, thread, opts)
    server.RequestHandlerClass = _make_handler(handle)
    thread.start()
    return handle.base_url, handle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8111)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--latency-jitter", type=float, default=0.0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--retry-after", type=float, default=0.05)
    parser.add_argument("--hang-rate", type=float, default=0.0)
    parser.add_argument("--hang-s", type=float, default=30.0)
    parser.add_argument("--require-key", default=None)
    parser.add_argument("--n-mode", choices=["ok", "ignore", "reject"], default="ok")
    parser.add_argument("--model", action="append", dest="models", help="served model name (repeatable)")
    args = parser.parse_args(argv)
    opts: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in ("host", "port", "models")}
    if args.models:
        opts["models"] = tuple(args.models)
    base_url, handle = start_fake_teacher(args.host, args.port, **opts)
    print(base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        handle.close()


if __name__ == "__main__":
    main()


__all__ = ["FakeRequest", "FakeTeacherHandle", "FakeTeacherOptions", "rationale_for", "start_fake_teacher"]
