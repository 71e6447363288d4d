"""annotate() against a real local OpenAI-compatible server with injected latency, 429s, 500s and hangs."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from aicd.annotate import (
    AnnotateConfig,
    CallbackSink,
    JsonlSink,
    MemorySink,
    TeacherError,
    annotate,
    read_raw,
)
from aicd.annotate import client as client_module
from aicd.annotate.client import TeacherClient
from aicd.annotate.limits import RateLimits, estimate_tokens
from tests.annotate.conftest import make_examples
from tests.support.fake_teacher import start_fake_teacher

REPO = Path(__file__).resolve().parents[2]


def _config(base_url: str, **kw) -> AnnotateConfig:
    opts = {
        "base_url": base_url,
        "teacher": "fake-teacher",
        "api_key": "sk-test-key",
        "concurrency": 16,
        "timeout": 1.0,
        "backoff_initial": 0.02,
        "backoff_max": 0.5,
        "max_retries": 8,
    }
    return AnnotateConfig(**{**opts, **kw})


def _question_id(question: str | None) -> str:
    assert question is not None
    return f"q{int(question.split(':')[0].removeprefix('Item ')):04d}"


def test_200_questions_k3_with_injected_failures_store_exactly_600(teacher, tmp_path: Path) -> None:
    base_url, server = teacher
    server.options.fail_rate = 0.1
    server.options.hang_rate = 0.01
    server.options.hang_s = 5.0
    server.options.latency = 0.005
    examples = make_examples(200)
    sink = JsonlSink(tmp_path / "raw.jsonl")
    report = annotate(_config(base_url, timeout=0.5), examples, sink)
    sink.close()

    records = read_raw(tmp_path / "raw.jsonl")
    assert len(records) == 600 and all(r.status == "ok" for r in records)
    assert {r.key[:2] for r in records} == {(ex.id, i) for ex in examples for i in range(3)}
    faults = server.faults()
    assert faults.get("429", 0) > 0 and faults.get("500", 0) > 0 and faults.get("hang", 0) > 0
    assert report.ok == 600 and report.failed == 0 and report.retries >= sum(faults.values())
    # each question was answered (and paid for) exactly once, with all three samples in one request
    answered = Counter(_question_id(r.question) for r in server.ok_requests())
    assert set(answered) == {ex.id for ex in examples} and set(answered.values()) == {1}
    assert {r.n for r in server.ok_requests()} == {3}
    assert report.prompt_tokens == sum(r.usage.prompt_tokens for r in records) > 0
    assert report.filters.total == 600 and 0 < report.filters.kept < 600


@pytest.mark.parametrize("ms_header", [True, False])
def test_retry_after_is_honoured(teacher, ms_header: bool) -> None:
    base_url, server = teacher
    server.options.fail_first = 2
    server.options.fail_kinds = ("429",)
    server.options.retry_after = 0.4
    server.options.send_retry_after_ms = ms_header
    sink = MemorySink()
    # backoff_initial=0: without Retry-After the client would retry at once
    report = annotate(_config(base_url, backoff_initial=0.0, k=1), make_examples(1), sink)
    assert report.ok == 1 and report.retries == 2
    reqs = server.requests
    assert [r.status for r in reqs] == [429, 429, 200]
    for before, after in zip(reqs, reqs[1:], strict=False):
        assert after.t_start - before.t_end >= 0.35  # the 0.4 s the server asked for (lower bound only)


def test_item_failing_after_last_retry_is_recorded_and_retried_on_resume(teacher, tmp_path: Path) -> None:
    base_url, server = teacher
    server.options.fail_questions = ("Item 3:",)
    examples = make_examples(10)
    path = tmp_path / "raw.jsonl"
    with JsonlSink(path) as sink:
        report = annotate(_config(base_url, max_retries=2), examples, sink)
    assert report.ok == 27 and report.failed == 3
    assert {f["question_id"] for f in report.failures} == {"q0003"}
    assert "HTTP 500" in report.failures[0]["error"]
    failed = [r for r in read_raw(path) if r.status == "failed"]
    assert sorted(r.sample_index for r in failed) == [0, 1, 2] and all(r.error for r in failed)
    assert {r.attempts for r in failed} == {3}
    assert (
        sum(1 for r in server.requests if r.question and r.question.startswith("Item 3:")) == 3
    )  # 1 + 2 retries

    server.options.fail_questions = ()
    server.reset()
    with JsonlSink(path) as sink:
        report = annotate(_config(base_url), examples, sink)
    assert report.ok == 3 and report.already_stored == 27
    assert [_question_id(r.question) for r in server.requests] == ["q0003"]
    ok = [r for r in read_raw(path) if r.status == "ok"]
    assert len(ok) == 30 and len({r.key for r in ok}) == 30


@pytest.mark.parametrize(
    ("n_mode", "message", "param"),
    [
        ("ignore", None, None),  # like Ollama: one choice whatever n is
        ("reject", "n > 1 is not supported by this server", None),
        ("reject", "'n' must be 1 when using greedy sampling", None),  # vLLM's wording
        ("reject", "Invalid value for this parameter.", "n"),  # only error.param names it
    ],
)
def test_server_without_n_support_gets_k_single_requests(
    teacher, n_mode: str, message: str | None, param: str | None
) -> None:
    base_url, server = teacher
    server.options.n_mode = n_mode
    if message is not None:
        server.options.n_reject_message, server.options.n_reject_param = message, param
    sink = MemorySink()
    report = annotate(_config(base_url, concurrency=1), make_examples(10), sink)
    assert report.ok == 30 and len({r.key for r in sink.records}) == 30
    ok = server.ok_requests()
    assert len(ok) == 30  # one stored rationale per paid request: nothing asked twice
    assert [r.n for r in ok[1:]] == [1] * 29  # after the first answer the client stopped sending n


def test_a_400_not_about_n_fails_that_item_only(teacher) -> None:
    base_url, server = teacher
    server.options.bad_request_questions = ("Item 0:",)  # e.g. a prompt over the context length
    sink = MemorySink()
    report = annotate(_config(base_url, concurrency=1), make_examples(5), sink)
    assert report.ok == 12 and report.failed == 3
    assert {(f.question_id, f.sample_index) for f in sink.failures} == {("q0000", i) for i in range(3)}
    assert all(f.error.startswith("HTTP 400: This model's maximum context length") for f in sink.failures)
    # not asked again one by one, and the questions after it still get n=3 in one request
    assert [(_question_id(r.question), r.n) for r in server.requests] == [(f"q{i:04d}", 3) for i in range(5)]


def test_a_reply_without_choices_is_a_failure_paid_for_once(teacher) -> None:
    base_url, server = teacher
    server.options.empty_choices = True
    sink = MemorySink()
    report = annotate(
        _config(base_url, teacher="gpt-3.5-turbo"),  # a model with a price: the cost is counted too
        make_examples(2),
        sink,
        should_stop=lambda: len(server.requests) > 20,  # without a bound the client would ask forever
    )
    assert not report.stopped and len(server.requests) == 2  # one request per question, never asked again
    assert report.ok == 0 and report.failed == 6
    assert {f.error for f in sink.failures} == {"no choices in reply"}
    assert report.prompt_tokens == sum(r.prompt_tokens for r in server.requests) > 0
    assert report.cost_usd is not None and report.cost_usd > 0
    assert sum(f.usage.prompt_tokens for f in sink.failures) == report.prompt_tokens


def test_ollama_style_model_tag_passes_the_preflight() -> None:
    base_url, server = start_fake_teacher(models=("llama3:latest", "mistral:7b"))
    try:
        report = annotate(_config(base_url, teacher="llama3", k=1), make_examples(2), MemorySink())
        assert report.ok == 2 and {r.model for r in server.requests} == {"llama3"}
        with pytest.raises(TeacherError, match="unknown teacher model 'mistral' .*it serves: llama3:latest"):
            annotate(_config(base_url, teacher="mistral", k=1), make_examples(2), MemorySink())
    finally:
        server.close()


def test_single_mode_sends_k_requests_per_question(teacher) -> None:
    base_url, server = teacher
    report = annotate(_config(base_url, n_mode="single"), make_examples(5), MemorySink())
    assert report.ok == 15 and len(server.ok_requests()) == 15 and {r.n for r in server.requests} == {1}


@pytest.mark.parametrize("n_mode", ["auto", "single"])
def test_concurrency_limit_holds(teacher, monkeypatch: pytest.MonkeyPatch, n_mode: str) -> None:
    """At most `concurrency` requests in flight (k of them per question in single mode) and at most
    `concurrency` questions in progress: removing either semaphore breaks one of the two bounds."""
    base_url, server = teacher
    server.options.latency = 0.05
    in_progress: Counter[str] = Counter()
    peak_questions = 0
    complete = TeacherClient.complete

    async def counting_complete(self: TeacherClient, prompt: str, n: int):  # noqa: ANN202
        nonlocal peak_questions
        in_progress[prompt] += 1
        peak_questions = max(peak_questions, len(in_progress))
        try:
            return await complete(self, prompt, n)
        finally:
            in_progress[prompt] -= 1
            if not in_progress[prompt]:
                del in_progress[prompt]

    monkeypatch.setattr(TeacherClient, "complete", counting_complete)
    report = annotate(_config(base_url, concurrency=4, n_mode=n_mode), make_examples(40), MemorySink())
    assert report.ok == 120
    assert len(server.requests) == (40 if n_mode == "auto" else 120)
    assert 2 <= server.max_in_flight <= 4
    assert 2 <= peak_questions <= 4


@pytest.mark.parametrize("limit", ["rpm", "tpm"])
def test_rate_limits_space_the_requests(teacher, monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    """5 requests (or 5 requests' worth of tokens) per 1 s period: a burst of 5, then one every 0.2 s."""
    base_url, server = teacher
    monkeypatch.setattr(client_module, "RateLimits", functools.partial(RateLimits, period=1.0))
    examples = make_examples(15)
    config = _config(base_url, k=1, concurrency=8, max_tokens=50)
    if limit == "rpm":
        config.rpm = 5
    else:
        config.tpm = 5 * max(estimate_tokens(config.render(e.question, e.answer), 50, 1) for e in examples)
    report = annotate(config, examples, MemorySink())
    assert report.ok == 15
    starts = sorted(r.t_start for r in server.requests)
    assert len(starts) == 15
    for j in range(5, 15):  # lower bounds only: a loaded machine may be slower, never faster
        assert starts[j] - starts[0] >= 0.2 * (j - 4) * 0.95 - 0.05, (
            j,
            [round(t - starts[0], 3) for t in starts],
        )


def test_stop_request_keeps_what_arrived_and_resume_asks_only_for_the_rest(teacher, tmp_path: Path) -> None:
    base_url, server = teacher
    server.options.latency = 0.05  # 60 questions / 4 in flight: ≥ 0.75 s, the stop check runs every 0.1 s
    path = tmp_path / "raw.jsonl"
    examples = make_examples(60)
    progress: list[int] = []
    with JsonlSink(path) as sink:
        report = annotate(
            _config(base_url, concurrency=4),
            examples,
            sink,
            should_stop=lambda: len(progress) >= 30,
            on_progress=lambda done, total: progress.append(done),
        )
    assert report.stopped and 30 <= report.ok < 180
    stored = {r.question_id for r in read_raw(path)}
    assert len(read_raw(path)) == report.ok

    server.reset()
    with JsonlSink(path) as sink:
        report2 = annotate(_config(base_url), examples, sink)
    assert report2.ok == 180 - report.ok and not report2.stopped
    asked = {_question_id(r.question) for r in server.requests}
    assert asked.isdisjoint(stored)
    assert len({r.key for r in read_raw(path)}) == len(read_raw(path)) == 180


def test_callback_sink_like_the_worker(teacher) -> None:
    base_url, server = teacher
    first = MemorySink()
    annotate(_config(base_url, k=2), make_examples(4), first)
    rows, failures = [], []
    sink = CallbackSink(rows.append, failures.append, existing=first.records[:4])
    server.reset()
    report = annotate(_config(base_url, k=2), make_examples(4), sink)
    assert report.already_stored == 4 and len(rows) == 4 and not failures
    assert {r.key for r in rows}.isdisjoint({r.key for r in first.records[:4]})
    assert len(report.examples) + (report.filters.examples - report.filters.examples_with_rationale) == 4


def test_changing_the_prompt_asks_again_under_a_new_key(teacher) -> None:
    base_url, server = teacher
    sink = MemorySink()
    annotate(_config(base_url, k=1), make_examples(3), sink)
    other = "Question: {question} Hint: The answer should be {answer}. Explain briefly. Answer:"
    report = annotate(_config(base_url, k=1, prompt_template=other), make_examples(3), sink)
    assert report.ok == 3 and len({r.prompt_hash for r in sink.records}) == 2


def test_fatal_errors_raise_before_anything_is_written(teacher, tmp_path: Path) -> None:
    base_url, server = teacher
    path = tmp_path / "raw.jsonl"
    with pytest.raises(TeacherError, match="unknown teacher model 'nope'"):
        annotate(_config(base_url, teacher="nope"), make_examples(3), JsonlSink(path))
    with pytest.raises(TeacherError, match="unknown teacher model 'nope'"):
        annotate(_config(base_url, teacher="nope", preflight=False), make_examples(3), JsonlSink(path))
    server.options.require_key = "sk-right-key"
    with pytest.raises(TeacherError, match="rejected the API key") as err:
        annotate(_config(base_url, api_key="sk-wrong-key-123"), make_examples(3), JsonlSink(path))
    assert "sk-wrong-key-123" not in str(err.value)
    with pytest.raises(TeacherError, match=r"cannot reach .*connection error"):
        annotate(_config("http://127.0.0.1:9/v1"), make_examples(3), JsonlSink(path))
    with pytest.raises(TeacherError, match=r"cannot reach .*connection error"):  # no preflight to catch it
        annotate(_config("http://127.0.0.1:9/v1", preflight=False), make_examples(3), JsonlSink(path))
    assert not path.exists()


def test_a_request_that_hangs_past_every_retry_is_stored_as_a_timeout(teacher) -> None:
    base_url, server = teacher
    server.options.hang_rate = 1.0
    server.options.hang_s = 5.0
    sink = MemorySink()
    report = annotate(_config(base_url, k=1, timeout=0.3, max_retries=1), make_examples(2), sink)
    assert report.ok == 0 and report.failed == 2
    assert [f.error for f in sink.failures] == ["request timed out"] * 2
    assert server.faults() == {"hang": 4}  # each item: first try + one retry


def test_a_long_retry_after_is_honoured_beyond_backoff_max(teacher) -> None:
    base_url, server = teacher
    server.options.fail_first = 1
    server.options.fail_kinds = ("429",)
    server.options.retry_after = 0.6
    report = annotate(_config(base_url, k=1, backoff_max=0.05), make_examples(1), MemorySink())
    assert report.ok == 1 and [r.status for r in server.requests] == [429, 200]
    first, second = server.requests
    assert second.t_start - first.t_end >= 0.55  # the server's 0.6 s, not backoff_max's 0.05 s


def test_retry_after_is_capped_at_retry_after_max(teacher) -> None:
    base_url, server = teacher
    server.options.fail_first = 1
    server.options.fail_kinds = ("429",)
    server.options.retry_after = 60
    t0 = time.monotonic()
    report = annotate(_config(base_url, k=1, retry_after_max=0.3), make_examples(1), MemorySink())
    assert report.ok == 1 and time.monotonic() - t0 < 10
    first, second = server.requests
    assert second.t_start - first.t_end >= 0.25


def test_stop_interrupts_a_long_retry_after_wait(teacher) -> None:
    base_url, server = teacher
    server.options.fail_first = 1
    server.options.fail_kinds = ("429",)
    server.options.retry_after = 60  # under the default retry_after_max (300 s): honoured in full
    sink = MemorySink()
    t0 = time.monotonic()
    report = annotate(
        _config(base_url, k=1), make_examples(1), sink, should_stop=lambda: time.monotonic() > t0 + 0.3
    )
    assert time.monotonic() - t0 < 10
    assert report.stopped and report.ok == 0 and report.failed == 0 and not sink.failures
    assert [r.status for r in server.requests] == [429]  # no new request once stopping


def test_progress_bar_shows_rate_and_tokens(teacher, capsys: pytest.CaptureFixture[str]) -> None:
    base_url, server = teacher
    report = annotate(_config(base_url, k=2), make_examples(5), MemorySink(), progress=True)
    err = capsys.readouterr().err
    assert report.ok == 10
    assert "annotate fake-teacher" in err and "10/10" in err
    assert re.search(r"\d+(\.\d+)?(rationale/s|s/rationale)", err), err  # items per second
    assert f"tokens={report.prompt_tokens + report.completion_tokens}" in err, err


_TENACITY_8_2 = textwrap.dedent(
    """
    import sys

    import tenacity
    import tenacity.wait


    class wait_exponential_jitter(tenacity.wait.wait_base):
        \"\"\"tenacity 8.2's signature: `initial`, no `multiplier` (added in 9.x).\"\"\"

        def __init__(self, initial=1, max=tenacity.wait._utils.MAX_WAIT, exp_base=2, jitter=1):
            self.initial, self.max = initial, max

        def __call__(self, retry_state):
            return min(self.initial * 2 ** (retry_state.attempt_number - 1), self.max)


    tenacity.wait.wait_exponential_jitter = tenacity.wait_exponential_jitter = wait_exponential_jitter

    from aicd.annotate import AnnotateConfig, MemorySink, annotate
    from aicd.data.record import Example

    config = AnnotateConfig(
        base_url=sys.argv[1], teacher="fake-teacher", api_key="k", k=1, backoff_initial=0.02, max_retries=3
    )
    report = annotate(config, [Example(id="a", question="Item 1: what is 1 plus 1?", answer="2")], MemorySink())
    print("ok", report.ok, "retries", report.retries)
    """
)


def test_backoff_works_with_the_oldest_declared_tenacity(teacher) -> None:
    """pyproject says tenacity>=8.2, whose wait_exponential_jitter has no `multiplier` keyword."""
    base_url, server = teacher
    server.options.fail_first = 2
    server.options.fail_kinds = ("500",)
    result = subprocess.run(
        [sys.executable, "-c", _TENACITY_8_2, base_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["ok", "1", "retries", "2"]
