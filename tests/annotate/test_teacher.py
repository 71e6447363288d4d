"""annotate() against a real local OpenAI-compatible server with injected latency, 429s, 500s and hangs."""

from __future__ import annotations

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
from tests.annotate.conftest import make_examples


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


@pytest.mark.parametrize("n_mode", ["ignore", "reject"])
def test_server_without_n_support_gets_k_single_requests(teacher, n_mode: str) -> None:
    base_url, server = teacher
    server.options.n_mode = n_mode
    sink = MemorySink()
    report = annotate(_config(base_url, concurrency=1), make_examples(10), sink)
    assert report.ok == 30 and len({r.key for r in sink.records}) == 30
    ok = server.ok_requests()
    assert len(ok) == 30  # one stored rationale per paid request: nothing asked twice
    assert [r.n for r in ok[1:]] == [1] * 29  # after the first answer the client stopped sending n


def test_single_mode_sends_k_requests_per_question(teacher) -> None:
    base_url, server = teacher
    report = annotate(_config(base_url, n_mode="single"), make_examples(5), MemorySink())
    assert report.ok == 15 and len(server.ok_requests()) == 15 and {r.n for r in server.requests} == {1}


def test_concurrency_limit_holds(teacher) -> None:
    base_url, server = teacher
    server.options.latency = 0.05
    annotate(_config(base_url, concurrency=4), make_examples(40), MemorySink())
    assert 2 <= server.max_in_flight <= 4


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
